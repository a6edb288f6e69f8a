// The suite's CLI finds no test file when installed as a dependency, so
// this file runs it: the server's address comes from CONFORMANCE_URL.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

runConformanceTests({ baseUrl: process.env.CONFORMANCE_URL })
