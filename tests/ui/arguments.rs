use tokio_deferred::{inline_callbacks, Failure};

#[inline_callbacks(eager = false)]
async fn with_arguments() -> Result<u32, Failure> {
    Ok(1)
}

fn main() {}
