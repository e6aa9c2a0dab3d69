import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import * as OrderWords from "../src/OrderWords.js"

const order = (...messages: ReadonlyArray<string>) => OrderWords.fromConversation(messages)

describe("OrderWords: what the offline model orders", () => {
  it("takes the count and the item from the user's words", () => {
    expect(order("order three kettles")).toEqual({ item: "kettle", quantity: 3 })
    expect(order("Please order two lamps.")).toEqual({ item: "lamp", quantity: 2 })
    expect(order("Order a desk lamp")).toEqual({ item: "desk lamp", quantity: 1 })
    expect(order("I need 3 AA batteries for the office")).toEqual({ item: "AA battery", quantity: 3 })
    expect(order("buy a couple of the red mugs")).toEqual({ item: "red mug", quantity: 2 })
    expect(order("get me half a dozen wine glasses")).toEqual({ item: "wine glass", quantity: 6 })
    expect(order("order 4 boxes")).toEqual({ item: "box", quantity: 4 })
  })

  it("cuts the item at a price, a purpose or a place", () => {
    expect(order("Find a quiet espresso grinder under $300 and order one")).toEqual({
      item: "quiet espresso grinder",
      quantity: 1
    })
    expect(order("Find a quiet grinder and order two")).toEqual({ item: "quiet grinder", quantity: 2 })
    expect(order("buy 2 notebooks for school")).toEqual({ item: "notebook", quantity: 2 })
    expect(order("order a kettle with a temperature dial")).toEqual({ item: "kettle", quantity: 1 })
  })

  it("an uncounted item keeps its words; the count defaults to 1", () => {
    expect(order("order some headphones")).toEqual({ item: "headphones", quantity: 1 })
    expect(order("Tell me about espresso machines")).toEqual({ item: "espresso machines", quantity: 1 })
  })

  it("'order it' takes the item (and its count) from an earlier message; a new count wins", () => {
    expect(order("order three kettles", "Then order it after all")).toEqual({ item: "kettle", quantity: 3 })
    expect(order("Find a quiet grinder", "ok, order two of them")).toEqual({ item: "quiet grinder", quantity: 2 })
    expect(order("Order a lamp", "now a desk fan")).toEqual({ item: "desk fan", quantity: 1 })
  })

  it("words that name no item fall back to a gift card; counts stay between 1 and 10", () => {
    expect(order("hi")).toEqual({ item: OrderWords.fallbackItem, quantity: 1 })
    expect(order("order it please")).toEqual({ item: OrderWords.fallbackItem, quantity: 1 })
    expect(order()).toEqual({ item: OrderWords.fallbackItem, quantity: 1 })
    expect(order("order 50 kettles")).toEqual({ item: "kettle", quantity: 10 })
    expect(order("order 0 kettles")).toEqual({ item: "kettle", quantity: 1 })
    expect(order("a dozen eggs")).toEqual({ item: "egg", quantity: 10 })
  })

  it("any text gives an order place_order accepts: an item of 1 to 80 characters, a count of 1 to 10", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.array(FastCheck.string({ maxLength: 300 }), { maxLength: 4 }), (messages) => {
        const wanted = OrderWords.fromConversation(messages)
        return (
          wanted.item.trim().length >= 1 &&
          wanted.item.length <= 80 &&
          Number.isInteger(wanted.quantity) &&
          wanted.quantity >= 1 &&
          wanted.quantity <= OrderWords.maxQuantity
        )
      }),
      { numRuns: 500 }
    )
  })
})
