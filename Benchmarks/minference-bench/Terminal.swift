#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr, rewritten in place when stderr is a terminal.
enum Terminal {
    /// Writes `text` and a newline to stderr at once (unbuffered: it survives a killed process).
    static func line(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func progress(_ text: String, done: Bool = false) {
        let line = isatty(2) != 0 ? "\r\u{1B}[K" + text + (done ? "\n" : "") : (done ? text + "\n" : "")
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
