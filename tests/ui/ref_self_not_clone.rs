use tokio_deferred::{inline_callbacks, Failure};

struct NotClone(u32);

impl NotClone {
    #[inline_callbacks]
    async fn get(&self) -> Result<u32, Failure> {
        Ok(self.0)
    }
}

fn main() {}
