use tokio_deferred::inline_callbacks;

#[inline_callbacks]
async fn no_return_type() {}

fn main() {}
