import Foundation
import MInferenceCL
import Testing

/// The package's executables, built by `swift test` next to the test bundle (.build/debug).
enum BuiltExecutable {
    /// The folder of the running test binary.
    static var folder: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().path
    }

    /// The path of `name`; throws (failing the test with the place it looked) when it is missing.
    static func path(_ name: String) throws -> String {
        let path = folder + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw MissingExecutable(description: "\(name) was not found at \(path); `swift build` (or `swift test`, which builds every product) makes it")
        }
        return path
    }

    struct MissingExecutable: Error, CustomStringConvertible { let description: String }
}

/// A finished child process.
struct ProcessResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool

    /// Non-empty lines of stderr.
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

    var description: String { "exit \(status)\(timedOut ? " (killed: timeout)" : "")\nstderr:\n\(stderr)\nstdout:\n\(stdout.suffix(2000))" }
}

/// Runs `executable` with `arguments` and extra `environment`, output to files (no pipe can
/// fill up), killed after `timeout` seconds.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                directory: String? = nil, timeout: Double = 120) throws -> ProcessResult {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("minference-proc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while process.isRunning {
        if Date() > deadline {
            timedOut = true
            process.terminate()
            process.waitUntilExit()
            break
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
    process.waitUntilExit()
    try out.close()
    try err.close()
    return ProcessResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
                         timedOut: timedOut)
}

/// A fresh temporary folder, removed by `remove()`.
struct TemporaryFolder {
    let path: String

    init(_ label: String = "test") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("minference-\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes raw bytes.
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Writes a tensor as .npy.
    func write(_ name: String, _ tensor: Tensor) throws -> String {
        let p = file(name)
        try NPYFile.write(tensor, to: p)
        return p
    }

    /// Names of the files in the folder, sorted.
    func contents() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

/// The kernel files of the source tree (CLKernels/), by name, for tests that build from a copy.
enum EmbeddedKernelsForTests {
    static var files: [String: String] {
        let folder = String(#filePath[..<#filePath.range(of: "/Tests/")!.lowerBound]) + "/CLKernels"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".cl") || $0.hasSuffix(".h") }
        return Dictionary(uniqueKeysWithValues: names.map { ($0, (try? String(contentsOfFile: folder + "/" + $0, encoding: .utf8)) ?? "") })
    }
}
