/** The client process of the SSE scenario (see `sse/client.ts`). */
import { load } from "./sse/client.js"

const [port, encoder, runs, concurrency] = process.argv.slice(2)
const result = await load(Number(port), encoder!, Number(runs), Number(concurrency))
process.stdout.write(`${JSON.stringify(result)}\n`)
process.exit(0)
