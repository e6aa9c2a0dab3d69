/**
 * A real model server runs on another machine: what this process does after an abort cannot delay the server
 * seeing the socket close. On one machine the two share its cores, and the scheduler may leave the server waiting
 * for the core a busy client holds (about a millisecond here, in about half of the trials). So the scenarios whose
 * figure is what the server sees of an abort run with the fake server on the last core and this process (all its
 * threads) on the others, where Linux's `taskset` is there and the machine has two cores or more. The other
 * scenarios measure the client's own work and keep every core for it.
 */
import { spawnSync } from "node:child_process"
import * as os from "node:os"

const cores = os.availableParallelism()

/** Whether cores can be set apart on this machine. */
export const canPin = cores >= 2 && process.platform === "linux" && spawnSync("taskset", ["-V"]).status === 0

let isPinned = false

const setClientCores = (list: string) =>
  spawnSync("taskset", ["-a", "-p", "-c", list, String(process.pid)], { stdio: "ignore" })

/** Runs `scenario` with the fake servers it starts on a core of their own and this process off it. */
export const onOwnCores = async <A>(scenario: () => Promise<A>): Promise<A> => {
  if (!canPin) return scenario()
  setClientCores(`0-${cores - 2}`)
  isPinned = true
  try {
    return await scenario()
  } finally {
    isPinned = false
    setClientCores(`0-${cores - 1}`)
  }
}

/** The command and arguments that run a fake server (a node command line), on its own core inside `onOwnCores`. */
export const serverCommand = (command: string, args: ReadonlyArray<string>): [string, ReadonlyArray<string>] =>
  isPinned ? ["taskset", ["-c", String(cores - 1), command, ...args]] : [command, args]
