use tokio_deferred::{inline_callbacks, Failure};

struct Counter(u32);

impl Counter {
    #[inline_callbacks]
    async fn bump(&mut self) -> Result<u32, Failure> {
        self.0 += 1;
        Ok(self.0)
    }
}

fn main() {}
