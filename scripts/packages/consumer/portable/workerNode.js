// A worker that imports @tether/node: on workerd its export conditions resolve to a module that fails at import with
// a message naming @tether/core. The worker answers with what the import did. (Plain JavaScript: @tether/node's
// types need Node's, which this project does not install.)
export default {
  fetch: async () => {
    try {
      const module = await import("@tether/node")
      return new Response(`imported: ${Object.keys(module).join(", ")}`)
    } catch (error) {
      return new Response(`import failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
}
