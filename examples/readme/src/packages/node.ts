import { Schema } from "effect"
import { Agent } from "@tether/core"
import { CommandTool, WorkerTool } from "@tether/node"

const hash = WorkerTool.make({
  name: "hash_file",
  description: "Hashes a large file",
  input: Schema.Struct({ path: Schema.String }),
  output: Schema.String,
  module: new URL("./hashWorker.js", import.meta.url), // calls WorkerTool.workerMain(fn)
  poolSize: 2
})

const grep = CommandTool.make({
  name: "grep",
  description: "Lines of the repository matching a pattern",
  input: Schema.Struct({ pattern: Schema.String }),
  output: Schema.Array(Schema.String),
  command: ({ pattern }) => ({ cmd: "git", args: ["grep", "-n", pattern], cwd: "/srv/repo" }),
  parse: (stdout) => stdout.split("\n").filter((line) => line.length > 0),
  timeout: "30 seconds"
})

export const agent = Agent.make({ name: "code", tools: [hash, grep] })
