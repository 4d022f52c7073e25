// kafkajs over TLS, the counterpart of ../tls.py's roundtrip: produces records
// with keys and headers over SSL (with a client certificate when given) to a
// new topic, and consumes them back, every record once, in order, byte for
// byte. Node's TLS checks the broker's certificate against the CA and its
// host name.
//
//     node tls.js <bootstrap> <ca.pem> [<cert.pem> <key.pem>]
//
// Prints `OK roundtrip kafkajs <count>`; any mismatch exits non-zero.

'use strict';

const fs = require('fs');
const crypto = require('crypto');
const { Kafka, logLevel } = require('kafkajs');

const RECORDS = 300;

async function main() {
  const [bootstrap, ca, cert, key] = process.argv.slice(2);
  const ssl = { ca: [fs.readFileSync(ca)], rejectUnauthorized: true };
  if (cert) {
    ssl.cert = fs.readFileSync(cert);
    ssl.key = fs.readFileSync(key);
  }
  const kafka = new Kafka({
    clientId: 'tls-js',
    brokers: [bootstrap],
    ssl,
    logLevel: logLevel.ERROR,
  });
  const topic = `tls-kafkajs-${crypto.randomBytes(4).toString('hex')}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();

  const expected = [];
  for (let i = 0; i < RECORDS; i++) {
    expected.push({ key: `key-${i}`, value: `value-${i}-${'x'.repeat(i % 50)}`, headers: { n: `${i}` } });
  }
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < RECORDS; i += 50) {
    await producer.send({ topic, acks: -1, messages: expected.slice(i, i + 50) });
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `tls-${crypto.randomBytes(4).toString('hex')}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const consumed = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${consumed.length} of ${RECORDS} in time`)), 90000);
    consumer.run({
      eachMessage: async ({ message }) => {
        consumed.push(message);
        if (consumed.length === RECORDS) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await done;
  await consumer.disconnect();

  consumed.forEach((message, i) => {
    const want = expected[i];
    const got = {
      key: message.key.toString(),
      value: message.value.toString(),
      n: message.headers.n && message.headers.n.toString(),
    };
    if (got.key !== want.key || got.value !== want.value || got.n !== want.headers.n) {
      throw new Error(`record ${i} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
  });
  console.log(`OK roundtrip kafkajs ${consumed.length}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
