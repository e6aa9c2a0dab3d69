/** The core program as a module worker for workerd: each request runs it and answers with its report. */
import { Effect } from "effect"
import { verdict } from "./checks.js"
import { coreChecks } from "./scenario.js"

export default {
  fetch: async (): Promise<Response> => {
    try {
      return new Response(verdict("core program on workerd", await Effect.runPromise(coreChecks)))
    } catch (error) {
      return new Response(error instanceof Error ? error.message : String(error), { status: 500 })
    }
  }
}
