import ArgumentParser
import Logging
import MInferenceCL

@main
struct MInferenceCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minference-cl",
        abstract: "Long-context attention with MInference's dynamic sparse patterns on any OpenCL device.",
        subcommands: [DevicesCommand.self, AttentionCommand.self, DemoCommand.self, SearchCommand.self, InspectCommand.self,
                      GenerateCommand.self, CaptureCommand.self, EvalCommand.self, CheckModelCommand.self])

    /// Every error is one line on stderr (CommandLineErrors.swift).
    static func main() { mainReportingOneLineErrors() }
}

/// Options every command that touches a device shares.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "Device: an index (0), platform:device (0:1), gpu, cpu, or part of the name/vendor. Default: $MINFERENCECL_DEVICE, else the first GPU, else the first CPU device.")
    var device: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    func bootstrapLogging() {
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    func openContext() throws -> ComputeContext {
        bootstrapLogging()
        let selector = device.map(DeviceSelector.init) ?? DeviceSelector.fromEnvironment(Environment.variables)
        return try ComputeContext(selector: selector)
    }
}

/// Runs `body`, turning any error into a one-line message on stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        Terminal.error("\(error)")
        throw ExitCode(1)
    }
}
