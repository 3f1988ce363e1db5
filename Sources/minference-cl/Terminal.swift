import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Output of the command-line tool: results on stdout, errors and progress on stderr.
enum Terminal {
    static func error(_ message: String) {
        // First line as the error; further lines (a kernel build log) follow indented.
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false)
        let first = lines.isEmpty ? "" : String(lines.removeFirst())
        var text = "minference-cl: error: \(first)\n"
        for line in lines { text += "    \(line)\n" }
        writeStderr(text)
    }

    /// One line on stderr; the command still succeeds.
    static func warning(_ message: String) {
        writeStderr("minference-cl: warning: \(message)\n")
    }

    static func writeStderr(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// A progress line on stderr, rewritten in place when stderr is a terminal.
    static func progress(_ text: String, done: Bool = false) {
        if isatty(2) != 0 {
            writeStderr("\r\u{1B}[K" + text + (done ? "\n" : ""))
        } else if done {
            writeStderr(text + "\n")
        }
    }
}

enum Environment {
    static var variables: [String: String] { ProcessInfo.processInfo.environment }
}
