/**
 * What a client may read of an error's text: no stack frames and no server paths. The server's logs keep the whole
 * cause; a client gets the tag and the message.
 */

/** An indented stack frame (`    at f (/srv/app/x.js:1:2)`) or a line Node prints in place of frames. */
const stackLine = /^\s+(at\s|\.\.\. \d+ lines? matching cause stack trace)/

/**
 * A filesystem path: `file://` URLs, Windows paths (`C:\...`), and absolute POSIX paths of two segments or more
 * (`/srv/app/x.js:1:2`), not preceded by a word character (so `application/json` and `text/plain` stay).
 */
const path = /file:\/\/\S+|\b[A-Za-z]:\\[^\s"'()<>]+|(?<![\w.~-])(?:\/[\w.@%+~-]+){2,}\/?(?::\d+){0,2}/g

/** `text` without stack frames and with every server path replaced by `<path>`. */
export const scrub = (text: string): string =>
  text
    .split("\n")
    .filter((line) => !stackLine.test(line))
    .join("\n")
    .replace(path, "<path>")
    .trim()
