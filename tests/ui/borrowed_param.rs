use tokio_deferred::{inline_callbacks, Failure};

#[inline_callbacks]
async fn borrowed(name: &str) -> Result<usize, Failure> {
    Ok(name.len())
}

fn main() {}
