import ArgumentParser
import Logging
import MInferenceCL

@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minference-bench",
        abstract: "Correctness checks and timings of MInferenceCL on a device (OpenCL profiling events, warm-up, medians).",
        subcommands: [CheckCommand.self, RunCommand.self, ThresholdsCommand.self, TuneCommand.self, RealDataReport.self,
                      OclgrindCommand.self, SoakCommand.self, MultiCommand.self, ProductsCommand.self])
}

/// Device selection and logging shared by the subcommands.
struct BenchDeviceOptions: ParsableArguments {
    @Option(name: .long, help: "Device selector (index, platform:device, gpu, cpu, or part of the name).")
    var device: String?
    @Option(name: .long, help: "Log level.")
    var logLevel: String = "warning"

    func engine() throws -> AttentionEngine {
        let level = Logger.Level(rawValue: logLevel.lowercased()) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let selector = device.map(DeviceSelector.init) ?? DeviceSelector.fromEnvironment(BenchEnvironment.variables)
        return AttentionEngine(context: try ComputeContext(selector: selector))
    }
}
