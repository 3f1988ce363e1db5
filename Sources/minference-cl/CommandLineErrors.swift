import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

extension ParsableCommand {
    /// Parses and runs the command like ArgumentParser's `main()`, except that an argument error
    /// (a missing or malformed option, a failed `validate()`) is one line on stderr,
    /// `minference-cl: error: ...`, like every other error, instead of the message plus the usage
    /// text. Help and version requests print as usual.
    static func mainReportingOneLineErrors() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            let message = self.message(for: error)
            // ExitCode(1) from reportingErrors: the error is already on stderr.
            if !message.isEmpty { Terminal.error(oneLine(message)) }
            Glibc.exit(code.rawValue)
        }
    }

    /// The first line of an ArgumentParser message, without its "Error: " prefix.
    static func oneLine(_ message: String) -> String {
        var line = Substring(message.split(separator: "\n", omittingEmptySubsequences: true).first ?? "")
        if line.hasPrefix("Error: ") { line = line.dropFirst(7) }
        return String(line)
    }
}
