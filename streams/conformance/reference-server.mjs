// Starts the protocol's Node reference server, file-backed, for the
// differential test (streams/tests/differential.rs):
//   node reference-server.mjs DATA_DIR
// It listens on a port the system picks and prints its address.
import { DurableStreamTestServer } from "@durable-streams/server"

const server = new DurableStreamTestServer({
  port: 0,
  host: "127.0.0.1",
  dataDir: process.argv[2],
  longPollTimeout: 1000,
})
const url = await server.start()
console.error(`reference server serving on ${url}`)
