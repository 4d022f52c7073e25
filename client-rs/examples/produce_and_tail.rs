//! Produces a few keyed records to `demo` and tails one partition.
//!
//! Expects an agent's gateway at `http://127.0.0.1:8080` (`cargo run -p
//! fjord-agent --bin fjord -- agent`), or the URLs given as arguments:
//!
//! ```sh
//! cargo run -p fjord-client --example produce_and_tail -- http://127.0.0.1:8080
//! ```

use fjord_client::{Client, Position, Record};
use futures::StreamExt as _;

#[tokio::main]
async fn main() -> fjord_client::Result<()> {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("http://127.0.0.1:8080".to_owned());
    }
    let client = Client::new(urls)?;
    match client
        .admin()
        .create_topic("demo", Some(3), Vec::<(String, String)>::new())
        .await
    {
        Ok(_) => println!("created topic demo"),
        Err(error) if error.code() == Some("TOPIC_ALREADY_EXISTS") => {}
        Err(error) => return Err(error),
    }

    // Tail the partition of key-1 from now on.
    let partition = fjord_client::partition_for_key(b"key-1", 3);
    let mut tail = client
        .reader()
        .tail("demo", partition, Position::Latest)
        .await?;

    let producer = client.producer("demo");
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record = Record::new(format!("hello {i}"))
            .with_key(format!("key-{}", i % 3))
            .with_header("source", "produce_and_tail");
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await?;
    let mut expected = 0;
    for delivery in deliveries {
        let stored = delivery.await?;
        println!(
            "stored at partition {} offset {}",
            stored.partition, stored.offset
        );
        if stored.partition == partition {
            expected += 1;
        }
    }

    for _ in 0..expected {
        let Some(record) = tail.next().await else {
            break;
        };
        let record = record?;
        println!(
            "tailed offset {}: {}",
            record.offset,
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
        );
    }
    Ok(())
}
