@testable import MInferenceCL
import MInferenceCLKernels
import Testing

/// Every kernel file compiles on its own, with no `-D` at all: each tuning parameter and element
/// type has a default at the top of its file.
@Suite("Kernel sources")
struct KernelSourceTests {
    /// Every embedded kernel file (headers are compiled through the files that include them).
    static let files = EmbeddedKernels.files.keys.filter { $0.hasSuffix(".cl") }.sorted()

    @Test func everyKernelFileIsCovered() {
        #expect(Self.files.count >= 9, "\(Self.files)")
    }

    /// NVIDIA-only files (`*_nv_*.cl`: inline PTX) build on NVIDIA devices and are refused with a
    /// build error, not a crash, by every other compiler; every other file builds everywhere.
    @Test(arguments: files)
    func compilesStandalone(_ file: String) throws {
        let engine = try TestDevice.engine()
        let source = try KernelSource.named(file)
        #expect(!source.text.contains("#include \""), "includes are inlined before the build")
        if file.contains("_nv_") && !engine.context.device.info.isNVIDIA {
            #expect(throws: ProgramBuildError.self) { try engine.context.program(source, options: BuildOptions()) }
        } else {
            _ = try engine.context.program(source, options: BuildOptions())
        }
    }

    @Test("A failing build reports the file, options and the compiler's log")
    func buildErrorCarriesLog() throws {
        let engine = try TestDevice.engine()
        let source = try KernelSource.named("dense_attention.cl")
        do {
            _ = try engine.context.program(source, options: BuildOptions(defines: ["HEAD_DIM": "12"]))
            Issue.record("HEAD_DIM 12 must not build")
        } catch let error as ProgramBuildError {
            #expect(error.file == "dense_attention.cl")
            #expect(error.options.contains("-DHEAD_DIM=12"))
            #expect(error.log.contains("HEAD_DIM must be a multiple of 8"), "log: \(error.log)")
            #expect(error.status == "CL_BUILD_PROGRAM_FAILURE")
        }
    }

    @Test("The disk cache returns what was stored and rejects other keys and damaged files")
    func diskCacheRoundTrip() throws {
        let key = ProgramKey(file: "x.cl", sourceHash: 42, options: "-DA=1", deviceName: "dev", driverVersion: "1")
        let other = ProgramKey(file: "x.cl", sourceHash: 43, options: "-DA=1", deviceName: "dev", driverVersion: "1")
        let binary: [UInt8] = Array("binary bytes".utf8)
        let stored = DiskProgramCache.encode(binary, key: key)
        #expect(DiskProgramCache.decode(stored, key: key) == binary)
        #expect(DiskProgramCache.decode(stored, key: other) == nil)
        #expect(DiskProgramCache.decode(Array(stored.dropLast(3)), key: key) == nil)
        var flipped = stored
        flipped[flipped.count - 12] ^= 0xff
        #expect(DiskProgramCache.decode(flipped, key: key) == nil)
    }
}
