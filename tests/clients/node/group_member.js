// One kafkajs consumer-group member, driven by tests/clients/group_harness.py.
//
// Usage: node group_member.js BOOTSTRAP GROUP TOPIC NAME [--commit-every N]
//        [--commit-on-close] [--session-timeout-ms N] [--rebalance-timeout-ms N]
//
// Reports the same JSON lines as tests/clients/group_member.py ("assigned",
// "rec", "commit", "commit-failed", "closed"), commits its positions on
// "commit" and stops on "stop" from stdin.

'use strict'

const readline = require('readline')
const { Kafka, logLevel } = require('kafkajs')

function emit (ev, fields = {}) {
  process.stdout.write(JSON.stringify({ ev, t: Date.now() / 1000, ...fields }) + '\n')
}

function parseArgs (argv) {
  const [bootstrap, group, topic, name, ...rest] = argv
  const options = {
    bootstrap,
    group,
    topic,
    name,
    commitEvery: 0,
    commitOnClose: false,
    sessionTimeout: 6000,
    rebalanceTimeout: 20000
  }
  for (let i = 0; i < rest.length; i++) {
    switch (rest[i]) {
      case '--commit-every': options.commitEvery = Number(rest[++i]); break
      case '--commit-on-close': options.commitOnClose = true; break
      case '--session-timeout-ms': options.sessionTimeout = Number(rest[++i]); break
      case '--rebalance-timeout-ms': options.rebalanceTimeout = Number(rest[++i]); break
      default: throw new Error(`unknown option ${rest[i]}`)
    }
  }
  return options
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  const kafka = new Kafka({
    clientId: options.name,
    brokers: [options.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 10, initialRetryTime: 100 }
  })
  const consumer = kafka.consumer({
    groupId: options.group,
    sessionTimeout: options.sessionTimeout,
    rebalanceTimeout: options.rebalanceTimeout,
    heartbeatInterval: 1000,
    metadataMaxAge: 2000,
    // kafkajs heartbeats between fetches: a short long-poll lets it notice a
    // rebalance within about a second.
    maxWaitTimeInMs: 1000
  })
  let owned = new Set()
  let next = new Map()
  let sinceCommit = 0

  async function commit () {
    const offsets = {}
    const list = []
    for (const [partition, offset] of next) {
      if (owned.has(partition)) {
        offsets[partition] = offset
        list.push({ topic: options.topic, partition, offset: String(offset) })
      }
    }
    if (list.length === 0) return
    try {
      await consumer.commitOffsets(list)
      sinceCommit = 0
      emit('commit', { offsets })
    } catch (error) {
      emit('commit-failed', { error: String(error) })
    }
  }

  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const parts = (event.payload.memberAssignment[options.topic] || []).slice().sort((a, b) => a - b)
    owned = new Set(parts)
    for (const partition of next.keys()) {
      if (!owned.has(partition)) next.delete(partition)
    }
    emit('assigned', { parts })
  })
  consumer.on(consumer.events.REBALANCING, () => {
    owned = new Set()
    emit('assigned', { parts: [] })
  })

  await consumer.connect()
  await consumer.subscribe({ topic: options.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const offset = Number(message.offset)
      emit('rec', { p: partition, o: offset })
      next.set(partition, offset + 1)
      sinceCommit += 1
      if (options.commitEvery > 0 && sinceCommit >= options.commitEvery) {
        await commit()
      }
    }
  })

  let stopping = false
  async function stop () {
    if (stopping) return
    stopping = true
    if (options.commitOnClose) await commit()
    await consumer.disconnect()
    emit('closed')
    process.exit(0)
  }
  const input = readline.createInterface({ input: process.stdin })
  input.on('line', (line) => {
    if (line.trim() === 'stop') stop()
    else if (line.trim() === 'commit') commit()
  })
  input.on('close', () => stop())
}

main().catch((error) => {
  emit('client-error', { error: String(error && error.stack) })
  process.exit(1)
})
