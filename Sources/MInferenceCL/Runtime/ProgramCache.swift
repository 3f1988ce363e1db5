import COpenCL
import FoundationEssentials
import Logging
import Synchronization

/// Built programs of one context, keyed by `ProgramKey`; misses go to the disk cache, then to
/// the compiler. Thread-safe: a build holds the lock, so a program is compiled once per context.
final class ProgramCache: Sendable {
    private let programs = Mutex<[ProgramKey: Program]>([:])
    let diskCache: DiskProgramCache?
    let logger: Logger
    /// Compiler flags added to every build (`MINFERENCECL_BUILD_FLAGS`, e.g. `-cl-nv-verbose` for
    /// ptxas register reports in the build log, logged at debug level).
    let extraFlags: [String]

    init(diskCache: DiskProgramCache?, logger: Logger) {
        self.diskCache = diskCache
        self.logger = logger
        self.extraFlags = (ProcessInfo.processInfo.environment["MINFERENCECL_BUILD_FLAGS"] ?? "").split(separator: " ").map(String.init)
    }

    func removeAll() { programs.withLock { $0.removeAll() } }

    /// Programs held.
    var count: Int { programs.withLock { $0.count } }

    func program(source: KernelSource, options: BuildOptions, context: ComputeContext) throws -> Program {
        let info = context.device.info
        var options = options
        options.flags += extraFlags
        let key = ProgramKey(file: source.file, sourceHash: source.hash, options: options.commandLine,
                             deviceName: info.name, driverVersion: info.driverVersion,
                             secondStage: options.sm90a?.description ?? "")
        return try programs.withLock { cache in
            if let hit = cache[key] {
                return hit
            }
            let program = try build(source: source, key: key, sm90a: options.sm90a, context: context)
            cache[key] = program
            return program
        }
    }

    private func build(source: KernelSource, key: ProgramKey, sm90a: Sm90aBuild?, context: ComputeContext) throws -> Program {
        let clock = ContinuousClock()
        let started = clock.now
        if let diskCache, let binary = diskCache.load(key) {
            let loaded = sm90a == nil ? try? fromBinary(binary, key: key, stage: .openCLC, context: context)
                : try? fromBinary(binary, key: key, options: Self.stageTwoOptions(key), stage: .sm90aBinary, context: context)
            if let program = loaded {
                logger.debug("program \(key): disk cache hit (\(milliseconds(clock.now - started)) ms)")
                return program
            }
            logger.debug("program \(key): cached binary rejected by the driver, rebuilding")
        }
        let program: Program
        let binary: [UInt8]
        if let sm90a {
            (program, binary) = try buildSm90a(source, key: key, patch: sm90a, context: context)
        } else {
            program = try fromSource(source, key: key, context: context)
            binary = (try? program.binary()) ?? []
        }
        let elapsed = milliseconds(clock.now - started)
        logger.debug("program \(key): compiled in \(elapsed) ms")
        if let diskCache {
            do {
                try diskCache.store(key, binary: binary)
            } catch {
                logger.debug("program \(key): not stored in the disk cache: \(error)")
            }
        }
        return program
    }

    /// The two stages of `Sm90aBuild`: the driver's sm_90 build of the source, its PTX patched to
    /// sm_90a, that PTX built as a binary. Returns the program and the patched PTX (what the disk
    /// cache keeps: loading it is stage 2 alone).
    private func buildSm90a(_ source: KernelSource, key: ProgramKey, patch: Sm90aBuild,
                            context: ComputeContext) throws -> (Program, [UInt8]) {
        let info = context.device.info
        guard info.isNVIDIA, let cc = info.nvidiaComputeCapability, cc.major == 9, cc.minor == 0 else {
            throw ProgramBuildError(file: key.file, options: key.options, device: key.deviceName, status: "unsupported device",
                                    log: "an sm_90a build needs an NVIDIA device of compute capability 9.0; this one reports "
                                        + (info.nvidiaComputeCapability.map { "\($0)" } ?? "none"), stage: .sm90aSource)
        }
        let stageOne = try fromSource(source, key: key, stage: .sm90aSource, context: context)
        let ptx = String(decoding: try stageOne.binary().prefix { $0 != 0 }, as: UTF8.self)
        let patched = Array(try patch.patch(ptx: ptx, file: key.file, device: key.deviceName).utf8)
        return (try fromBinary(patched, key: key, options: Self.stageTwoOptions(key), stage: .sm90aBinary, context: context), patched)
    }

    /// Stage 2 builds PTX: it takes the flags (e.g. `-cl-nv-verbose`), not the preprocessor definitions.
    static func stageTwoOptions(_ key: ProgramKey) -> String {
        key.options.split(separator: " ").filter { !$0.hasPrefix("-D") }.joined(separator: " ")
    }

    private func fromSource(_ source: KernelSource, key: ProgramKey, stage: ProgramBuildError.Stage = .openCLC,
                            context: ComputeContext) throws -> Program {
        var status: cl_int = 0
        let handle: cl_program? = source.text.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            return clCreateProgramWithSource(context.context, 1, &pointer, nil, &status)
        }
        guard let handle, status == CL_SUCCESS else {
            throw OpenCLError(status: status, call: "clCreateProgramWithSource(\(source.file))", device: key.deviceName)
        }
        do {
            try buildProgram(handle, key: key, options: key.options, stage: stage, context: context)
        } catch {
            clReleaseProgram(handle)
            throw error
        }
        return Program(program: handle, key: key)
    }

    private func fromBinary(_ binary: [UInt8], key: ProgramKey, options: String? = nil, stage: ProgramBuildError.Stage,
                            context: ComputeContext) throws -> Program {
        var status: cl_int = 0
        var binaryStatus: cl_int = 0
        var device: cl_device_id? = context.device.id
        let handle: cl_program? = binary.withUnsafeBufferPointer { bytes in
            var pointer: UnsafePointer<UInt8>? = bytes.baseAddress
            var length = bytes.count
            return clCreateProgramWithBinary(context.context, 1, &device, &length, &pointer, &binaryStatus, &status)
        }
        guard let handle, status == CL_SUCCESS, binaryStatus == CL_SUCCESS else {
            if let handle { clReleaseProgram(handle) }
            throw OpenCLError(status: status != CL_SUCCESS ? status : binaryStatus, call: "clCreateProgramWithBinary", device: key.deviceName)
        }
        do {
            try buildProgram(handle, key: key, options: options ?? key.options, stage: stage, context: context)
        } catch {
            clReleaseProgram(handle)
            throw error
        }
        return Program(program: handle, key: key)
    }

    /// Builds `handle`; the caller releases it if this throws.
    private func buildProgram(_ handle: cl_program, key: ProgramKey, options: String, stage: ProgramBuildError.Stage,
                              context: ComputeContext) throws {
        var device: cl_device_id? = context.device.id
        let status = clBuildProgram(handle, 1, &device, options, nil, nil)
        let log = Program.buildLog(handle, device: context.device.id)
        if status != CL_SUCCESS {
            throw ProgramBuildError(file: key.file, options: options, device: key.deviceName,
                                    status: OpenCLError.name(of: status), log: log, stage: stage)
        }
        if !log.isEmpty { logger.debug("build log of \(key.file) (\(stage.rawValue)): \(log)") }
    }

    private func milliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }
}
