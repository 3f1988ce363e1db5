import COpenCL

/// A built `cl_program` for one device; the single owner of the handle.
package final class Program: @unchecked Sendable {
    let program: cl_program
    let key: ProgramKey
    var deviceName: String { key.deviceName }

    init(program: cl_program, key: ProgramKey) {
        self.program = program
        self.key = key
        LiveObjects.counters.programs.increment()
    }

    deinit {
        clReleaseProgram(program)
        LiveObjects.counters.programs.decrement()
    }

    /// The device binary (PTX on NVIDIA, an ELF or bitcode bundle elsewhere).
    func binary() throws -> [UInt8] {
        var size = 0
        try check(clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil),
                  "clGetProgramInfo(CL_PROGRAM_BINARY_SIZES)", device: deviceName)
        guard size > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: size)
        try bytes.withUnsafeMutableBufferPointer { buffer in
            var pointer: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            try check(clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointer, nil),
                      "clGetProgramInfo(CL_PROGRAM_BINARIES)", device: deviceName)
        }
        return bytes
    }

    /// The build log of this program (warnings, `-cl-nv-verbose` register reports).
    static func buildLog(_ program: cl_program, device: cl_device_id) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS,
              size > 0 else { return "" }
        var bytes = [UInt8](repeating: 0, count: size)
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil) == CL_SUCCESS
        else { return "" }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingSpaces()
    }
}

/// What identifies a built program: the kernel file and its source hash, the build options and
/// the device with its driver. Reads well in logs.
struct ProgramKey: Hashable, Sendable, CustomStringConvertible {
    let file: String
    let sourceHash: UInt64
    let options: String
    let deviceName: String
    let driverVersion: String
    /// The second build stage ("" for none; `Sm90aBuild.description`).
    var secondStage: String = ""

    var description: String {
        "\(file)#\(StableHash.hex(sourceHash)) [\(options)]\(secondStage.isEmpty ? "" : " [\(secondStage)]") on \(deviceName) (driver \(driverVersion))"
    }

    /// File name used by the disk cache.
    var digest: String {
        StableHash.hex(StableHash.fnv1a64(description.utf8)) + StableHash.hex(StableHash.fnv1a64(description.utf8, seed: 0x9e37_79b9_7f4a_7c15))
    }
}

/// A kernel build that failed, with everything needed to see why.
public struct ProgramBuildError: Error, CustomStringConvertible, Sendable {
    /// Which build failed: the driver's ordinary build, or a stage of the sm_90a build (`Sm90aBuild`).
    public enum Stage: String, Sendable {
        /// The driver's ordinary build of the OpenCL C source.
        case openCLC = "OpenCL C build"
        /// Stage 1 of the sm_90a build: the driver compiles the OpenCL C source to sm_90 PTX.
        case sm90aSource = "sm_90a stage 1 (OpenCL C to sm_90 PTX)"
        /// The host's patch of the stage-1 PTX (unhiding the sm_90a lines, retargeting).
        case sm90aPatch = "sm_90a patch of the stage-1 PTX"
        /// Stage 2: the driver builds the patched PTX for sm_90a.
        case sm90aBinary = "sm_90a stage 2 (patched PTX to sm_90a)"
    }

    /// The kernel file, e.g. `dense_attention.cl`.
    public let file: String
    /// The build options (`-D` values and flags) as passed to the compiler.
    public let options: String
    /// The device name.
    public let device: String
    /// The status by name, e.g. `CL_BUILD_PROGRAM_FAILURE`.
    public let status: String
    /// The compiler's build log.
    public let log: String
    /// Which build failed.
    public let stage: Stage

    package init(file: String, options: String, device: String, status: String, log: String, stage: Stage = .openCLC) {
        self.file = file
        self.options = options
        self.device = device
        self.status = status
        self.log = log
        self.stage = stage
    }

    /// The file, device, status, stage and options on the first line, then the build log.
    public var description: String {
        "building \(file) for \(device) failed with \(status) (\(stage.rawValue)); options: \(options)\nbuild log:\n\(log)"
    }
}
