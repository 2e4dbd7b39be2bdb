use tokio_deferred::{inline_callbacks, Failure};

#[inline_callbacks]
fn not_async() -> Result<u32, Failure> {
    Ok(1)
}

fn main() {}
