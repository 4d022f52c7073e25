// kafkajs compatibility check, the counterpart of ../compat.py: kafkajs creates
// topics through its admin API, produces records with keys, headers and
// timestamps over several partitions with every codec, with and without
// idempotence, and consumes them back; counts, per-partition order and every byte
// must match. kafkajs ships gzip only; snappy, lz4 and zstd are given to it as
// codecs built on pure-JavaScript libraries (no native builds).
//
//     node compat.js <bootstrap> [records per configuration] [partitions]
//
// The last line printed is a JSON summary; any mismatch exits non-zero.

'use strict';

const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4 = require('lz4js');
const zstd = require('@bokuweb/zstd-wasm');

const LZ4Codec = () => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer));
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer));
  },
});

const ZstdCodec = () => ({
  async compress(encoder) {
    return Buffer.from(zstd.compress(encoder.buffer, 3));
  },
  async decompress(buffer) {
    return Buffer.from(zstd.decompress(buffer));
  },
});

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = LZ4Codec;
CompressionCodecs[CompressionTypes.ZSTD] = ZstdCodec;

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};
const BASE_TIMESTAMP_MS = 1700000000000;

// A small deterministic generator (xorshift32), so runs are reproducible.
function rng(seed) {
  let state = seed * 2654435761 >>> 0 || 1;
  return () => {
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state;
  };
}

function makeRecords(count, partitions, seed) {
  const next = rng(seed);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'fjord'];
  const records = [];
  for (let i = 0; i < count; i++) {
    const text = Array.from({ length: 1 + (next() % 40) }, () => words[next() % words.length]).join(' ');
    const tail = Buffer.from(Array.from({ length: next() % 64 }, () => next() % 256));
    records.push({
      partition: i % partitions,
      key: Buffer.from(`key-${String(i).padStart(6, '0')}`),
      value: Buffer.concat([Buffer.from(`${i}:${text}`), tail]),
      headers: { index: Buffer.from(String(i)), bin: Buffer.from([i % 256, 0, 255]) },
      timestamp: String(BASE_TIMESTAMP_MS + i),
    });
  }
  return records;
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// Topic admin through kafkajs, every answer checked: createTopics with configs,
// listTopics, fetchTopicMetadata, describeConfigs, alterConfigs,
// createPartitions. The topic is left with `partitions` partitions.
async function adminRound(admin, topic, partitions) {
  const start = Math.max(1, partitions - 1);
  const created = await admin.createTopics({
    topics: [{
      topic,
      numPartitions: start,
      replicationFactor: 1,
      configEntries: [{ name: 'retention.ms', value: '86400000' }, { name: 'cleanup.policy', value: 'delete' }],
    }],
    waitForLeaders: true,
  });
  expect(created === true, `createTopics(${topic}) reported the topic existed`);
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: start, replicationFactor: 1 }] });
  expect(again === false, `createTopics(${topic}) twice must report it existed, got ${again}`);
  expect((await admin.listTopics()).includes(topic), `listTopics lacks ${topic}`);

  const configsOf = async (configNames) => {
    const described = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }],
      includeSynonyms: false,
    });
    const found = {};
    for (const resource of described.resources) {
      expect(resource.errorCode === 0, `describeConfigs: ${JSON.stringify(resource)}`);
      for (const entry of resource.configEntries) found[entry.configName] = entry.configValue;
    }
    return found;
  };
  let configs = await configsOf(undefined);
  expect(configs['retention.ms'] === '86400000', `retention.ms from createTopics: ${configs['retention.ms']}`);
  expect(configs['cleanup.policy'] === 'delete', `cleanup.policy: ${configs['cleanup.policy']}`);
  const altered = await admin.alterConfigs({
    validateOnly: false,
    resources: [{
      type: ConfigResourceTypes.TOPIC,
      name: topic,
      configEntries: [{ name: 'retention.ms', value: '3600000' }, { name: 'cleanup.policy', value: 'delete' }],
    }],
  });
  expect(altered.resources.length === 1 && altered.resources[0].errorCode === 0, `alterConfigs: ${JSON.stringify(altered)}`);
  configs = await configsOf(['retention.ms']);
  expect(configs['retention.ms'] === '3600000' && Object.keys(configs).length === 1,
    `describeConfigs(retention.ms) after alterConfigs: ${JSON.stringify(configs)}`);
  let refused = false;
  try {
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'no.such.config', value: '1' }] }],
    });
  } catch (error) {
    refused = true;
  }
  expect(refused, 'alterConfigs of an unknown config must fail');

  if (partitions > start) {
    // Resolves (with nothing) on success, throws on a refusal; checked by the
    // metadata below.
    await admin.createPartitions({ topicPartitions: [{ topic, count: partitions }] });
  }
  refused = false;
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count: 1 }] });
  } catch (error) {
    refused = true;
  }
  expect(refused, 'createPartitions to fewer partitions must fail');
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  expect(metadata.topics.length === 1 && metadata.topics[0].name === topic, `fetchTopicMetadata: ${JSON.stringify(metadata)}`);
  expect(metadata.topics[0].partitions.length === partitions,
    `${topic}: ${metadata.topics[0].partitions.length} partitions, expected ${partitions}`);
  expect(metadata.topics[0].partitions.every((p) => p.partitionErrorCode === 0 && p.leader >= 0),
    `partitions without a leader: ${JSON.stringify(metadata.topics[0].partitions)}`);
}

async function deleteAndCheck(admin, topic) {
  await admin.deleteTopics({ topics: [topic] });
  let listed = true;
  for (let i = 0; i < 50 && listed; i++) {
    listed = (await admin.listTopics()).includes(topic);
    if (listed) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(!listed, `deleteTopics: ${topic} still listed`);
}

async function runConfiguration(kafka, topic, records, partitions, codec, idempotent) {
  const admin = kafka.admin();
  await admin.connect();
  await adminRound(admin, topic, partitions);

  const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : 5 });
  await producer.connect();
  let acknowledged = 0;
  const chunk = 200;
  for (let start = 0; start < records.length; start += chunk) {
    const slice = records.slice(start, start + chunk);
    const results = await producer.send({
      topic,
      acks: -1,
      compression: CODECS[codec],
      messages: slice.map((r) => ({
        partition: r.partition, key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp,
      })),
    });
    for (const result of results) {
      if (result.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(result)}`);
    }
    acknowledged += slice.length;
  }
  await producer.disconnect();

  const consumed = [];
  const consumer = kafka.consumer({ groupId: `verify-${topic}`, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${topic}: consumed ${consumed.length} of ${records.length} in time`)), 90000);
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        consumed.push({ partition, offset: Number(message.offset), message });
        if (consumed.length >= records.length) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  await deleteAndCheck(admin, topic);
  await admin.disconnect();
  return { acknowledged, consumed };
}

function verify(label, records, consumed, partitions) {
  const problems = [];
  if (consumed.length !== records.length) {
    problems.push(`${label}: consumed ${consumed.length}, produced ${records.length}`);
  }
  for (let p = 0; p < partitions; p++) {
    const want = records.filter((r) => r.partition === p);
    const got = consumed.filter((c) => c.partition === p).sort((a, b) => a.offset - b.offset);
    const offsets = new Set(got.map((c) => c.offset));
    if (offsets.size !== got.length) problems.push(`${label}: partition ${p} returned an offset twice`);
    if (want.length !== got.length) problems.push(`${label}: partition ${p}: consumed ${got.length}, produced ${want.length}`);
    for (let i = 0; i < Math.min(want.length, got.length); i++) {
      const w = want[i];
      const m = got[i].message;
      const same = Buffer.compare(w.key, m.key) === 0
        && Buffer.compare(w.value, m.value) === 0
        && m.timestamp === w.timestamp
        && Object.keys(w.headers).length === Object.keys(m.headers || {}).length
        && Object.entries(w.headers).every(([k, v]) => m.headers[k] && Buffer.compare(v, m.headers[k]) === 0);
      if (!same) {
        problems.push(`${label}: partition ${p} record ${i} (offset ${got[i].offset}) differs`);
        break;
      }
    }
  }
  return problems;
}

async function main() {
  const bootstrap = process.argv[2];
  const count = Number(process.argv[3] || 1000);
  const partitions = Number(process.argv[4] || 3);
  await zstd.init();
  const kafka = new Kafka({ clientId: 'fjord-compat', brokers: [bootstrap], logLevel: logLevel.WARN });
  const problems = [];
  const totals = { produced: 0, acknowledged: 0, consumed: 0, configurations: 0 };
  let seed = 0;
  for (const idempotent of [false, true]) {
    for (const codec of Object.keys(CODECS)) {
      seed += 1;
      const label = `kafkajs codec=${codec} idempotent=${idempotent}`;
      const topic = `compat-kafkajs-${codec}-${idempotent ? 'idem' : 'plain'}`;
      const records = makeRecords(count, partitions, seed);
      const started = Date.now();
      const { acknowledged, consumed } = await runConfiguration(kafka, topic, records, partitions, codec, idempotent);
      if (acknowledged !== records.length) problems.push(`${label}: ${acknowledged} of ${records.length} acknowledged`);
      const found = verify(label, records, consumed, partitions);
      problems.push(...found);
      totals.produced += records.length;
      totals.acknowledged += acknowledged;
      totals.consumed += consumed.length;
      totals.configurations += 1;
      console.log(`${label}: produced ${records.length}, acknowledged ${acknowledged}, consumed ${consumed.length}, `
        + `${found.length ? 'MISMATCH' : 'ok'} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    }
  }
  for (const problem of problems) console.log('PROBLEM:', problem);
  console.log(JSON.stringify({ client: 'kafkajs', ...totals, problems: problems.length }));
  process.exit(problems.length ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
