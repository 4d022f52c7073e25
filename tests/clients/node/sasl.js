// kafkajs over SASL, the counterpart of ../sasl.py's roundtrip and refused
// scenarios:
//
//     node sasl.js <bootstrap> roundtrip <mechanism> <user> <password> <topic>
//     node sasl.js <bootstrap> refused <mechanism> <user> <password>
//
// <mechanism> is kafkajs's name: plain, scram-sha-256 or scram-sha-512. Prints
// `ROUNDTRIP kafkajs <n>` or `REFUSED kafkajs <error name>`, then `OK <scenario>`.

'use strict';

const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, scenario, mechanism, username, password, topic] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'fjord-sasl-test',
    brokers: bootstrap.split(','),
    sasl: { mechanism, username, password },
    logLevel: logLevel.NOTHING,
    retry: { retries: scenario === 'refused' ? 0 : 5 },
  });
  if (scenario === 'refused') {
    const producer = kafka.producer();
    try {
      await producer.connect();
      console.log('REFUSED kafkajs NOTHING');
      await producer.disconnect();
    } catch (error) {
      console.log(`REFUSED kafkajs ${error.name}`);
    }
  } else {
    const producer = kafka.producer();
    await producer.connect();
    const values = Array.from({ length: 10 }, (_, i) => `kafkajs-${i}`);
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: `sasl-${Date.now()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const seen = new Set();
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, 30000);
      consumer
        .run({
          eachMessage: async ({ message }) => {
            seen.add(message.value.toString());
            if (values.every((v) => seen.has(v))) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();
    console.log(`ROUNDTRIP kafkajs ${values.filter((v) => seen.has(v)).length}`);
  }
  console.log(`OK ${scenario}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
