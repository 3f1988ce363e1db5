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
                             deviceName: info.name, driverVersion: info.driverVersion)
        return try programs.withLock { cache in
            if let hit = cache[key] {
                return hit
            }
            let program = try build(source: source, key: key, context: context)
            cache[key] = program
            return program
        }
    }

    private func build(source: KernelSource, key: ProgramKey, context: ComputeContext) throws -> Program {
        let clock = ContinuousClock()
        let started = clock.now
        if let diskCache, let binary = diskCache.load(key) {
            if let program = try? fromBinary(binary, key: key, context: context) {
                logger.debug("program \(key): disk cache hit (\(milliseconds(clock.now - started)) ms)")
                return program
            }
            logger.debug("program \(key): cached binary rejected by the driver, rebuilding")
        }
        let program = try fromSource(source, key: key, context: context)
        let elapsed = milliseconds(clock.now - started)
        logger.debug("program \(key): compiled in \(elapsed) ms")
        if let diskCache {
            do {
                try diskCache.store(key, binary: try program.binary())
            } catch {
                logger.debug("program \(key): not stored in the disk cache: \(error)")
            }
        }
        return program
    }

    private func fromSource(_ source: KernelSource, key: ProgramKey, context: ComputeContext) throws -> Program {
        var status: cl_int = 0
        let handle: cl_program? = source.text.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            return clCreateProgramWithSource(context.context, 1, &pointer, nil, &status)
        }
        guard let handle, status == CL_SUCCESS else {
            throw OpenCLError(status: status, call: "clCreateProgramWithSource(\(source.file))", device: key.deviceName)
        }
        do {
            try buildProgram(handle, key: key, context: context)
        } catch {
            clReleaseProgram(handle)
            throw error
        }
        return Program(program: handle, key: key)
    }

    private func fromBinary(_ binary: [UInt8], key: ProgramKey, context: ComputeContext) throws -> Program {
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
            try buildProgram(handle, key: key, context: context)
        } catch {
            clReleaseProgram(handle)
            throw error
        }
        return Program(program: handle, key: key)
    }

    /// Builds `handle`; the caller releases it if this throws.
    private func buildProgram(_ handle: cl_program, key: ProgramKey, context: ComputeContext) throws {
        var device: cl_device_id? = context.device.id
        let status = clBuildProgram(handle, 1, &device, key.options, nil, nil)
        let log = Program.buildLog(handle, device: context.device.id)
        if status != CL_SUCCESS {
            throw ProgramBuildError(file: key.file, options: key.options, device: key.deviceName,
                                    status: OpenCLError.name(of: status), log: log)
        }
        if !log.isEmpty { logger.debug("build log of \(key.file): \(log)") }
    }

    private func milliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }
}
