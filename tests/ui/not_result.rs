use tokio_deferred::inline_callbacks;

#[inline_callbacks]
async fn not_result() -> Option<u32> {
    Some(1)
}

fn main() {}
