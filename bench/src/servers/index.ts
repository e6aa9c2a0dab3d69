/** Every side behind its server, for the disconnect scenario; the floor first. */
import { langchainBehindNode, rawBehindNode, vercelBehindNode } from "./node.js"
import { effectAiBehindPlatform, floor, tetherBehindPlatform, tetherSessionRoutes } from "./platform.js"
import type { Served } from "./Served.js"

export type { AppServer, ChatRequest, Served } from "./Served.js"

export const servedSides: ReadonlyArray<Served> = [
  floor,
  tetherSessionRoutes,
  tetherBehindPlatform,
  rawBehindNode,
  vercelBehindNode,
  langchainBehindNode,
  effectAiBehindPlatform
]
