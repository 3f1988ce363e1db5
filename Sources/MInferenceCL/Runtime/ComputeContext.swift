import CCLBlast
import COpenCL
import FoundationEssentials
import Logging
import Synchronization

/// An OpenCL context and in-order queue on one device, with the programs built for it: its own
/// (a profiling queue, `init(device:)`), or a caller's (`init(wrapping:device:queue:)`). It holds
/// one reference to its `cl_context` and `cl_command_queue` and releases exactly that in `deinit`.
/// Safe to share between threads: OpenCL queues are thread-safe and kernels are created per launch.
public final class ComputeContext: @unchecked Sendable {
    /// The device the context computes on, with what its driver reports (``ComputeDevice/info``:
    /// vendor, memory, NVIDIA compute capability). For a wrapped context, the matching entry of
    /// ``ComputeDevice/all()``, or the device described on its own (index -1) when it is not
    /// listed, e.g. a sub-device.
    public let device: ComputeDevice
    let context: cl_context
    let queue: cl_command_queue
    /// Whether the queue records profiling information (`CL_QUEUE_PROFILING_ENABLE`). Without it
    /// the library runs as usual and its timings are unavailable (`PhaseTiming.isAvailable`).
    public let profiling: Bool
    /// The device handle this context retained (a caller's sub-device), released in `deinit`.
    private let retainedDevice: cl_device_id?

    /// The underlying OpenCL context (owned by this object, or by the caller who wrapped it).
    public var clContext: cl_context { context }
    /// The in-order command queue every command of this context goes to.
    public var clQueue: cl_command_queue { queue }
    /// The device the context computes on.
    public var clDevice: cl_device_id { device.id }
    let programs: ProgramCache
    let logger: Logger
    /// Whether CLBlast has compiled kernels for this context (its cache is cleared on release).
    private let clblastUsed = Atomic<Bool>(false)
    /// Device memory one request may use: `CL_DEVICE_GLOBAL_MEM_SIZE`, or the memory limit if lower.
    public let memoryBudget: Int
    /// The largest single buffer: `CL_DEVICE_MAX_MEM_ALLOC_SIZE`, or the memory limit if lower.
    public let maxAllocation: Int
    /// The memory limit this context was opened with (nil: the device's own limits).
    public let memoryLimit: Int?
    /// Whether buffers' memory is kept until the context is released (see `init`).
    public let holdsBufferMemory: Bool
    /// With `holdsBufferMemory`: every buffer's `cl_mem` (as its address), retained until the
    /// context is released.
    let heldMemory = Mutex<[Int]>([])
    /// Launches per kernel name (see `launchCounts`).
    let launches = Mutex<[String: Int]>([:])
    /// Buffers allocated on this context so far (see `allocationCount`).
    let allocations = Atomic<Int>(0)
    /// Whether this context may run the wgmma check (false for the check's own context).
    private let wgmmaCheck: Bool
    private let wgmmaStatus = Mutex<WGMMAStatus?>(nil)
    private let diskCache: DiskProgramCache?

    /// How many buffers this context has allocated so far (released ones included): lets tests
    /// see that a refused request allocated nothing.
    public var allocationCount: Int { allocations.load(ordering: .relaxed) }

    /// How many times each kernel of this project ran on this context, by kernel name (CLBlast's
    /// own kernels are not counted): lets tests and the Oclgrind check see which families ran.
    public var launchCounts: [String: Int] { launches.withLock { $0 } }

    /// The environment variable that caps the device memory a context uses (bytes, or with a
    /// K, M or G suffix: `512M`), below what the device reports.
    public static let memoryLimitVariable = "MINFERENCECL_MEMORY_LIMIT"

    /// Opens `device`. `programCache` is the on-disk cache of built programs (nil: none).
    /// `memoryLimit` caps the device memory and single allocations this context uses (nil:
    /// `MINFERENCECL_MEMORY_LIMIT`, else the device's own limits). `holdsBufferMemory` keeps the
    /// memory of every buffer until the context is released: Oclgrind's uninitialized-value
    /// check keeps the shadow state of a freed buffer and applies it to the next buffer that
    /// reuses its id, so runs under it must not free buffers.
    public convenience init(device: ComputeDevice, diskCache: DiskProgramCache? = DiskProgramCache.fromEnvironment(),
                            logger: Logger = Logger(label: "minference-cl"), memoryLimit: Int? = nil,
                            holdsBufferMemory: Bool = false) throws {
        try self.init(device: device, diskCache: diskCache, logger: logger, memoryLimit: memoryLimit,
                      holdsBufferMemory: holdsBufferMemory, wgmmaCheck: true)
    }

    init(device: ComputeDevice, diskCache: DiskProgramCache?, logger: Logger, memoryLimit: Int? = nil,
         holdsBufferMemory: Bool = false, wgmmaCheck: Bool) throws {
        self.device = device
        self.diskCache = diskCache
        self.wgmmaCheck = wgmmaCheck
        self.logger = logger
        (self.memoryBudget, self.maxAllocation, self.memoryLimit) = try Self.memoryLimits(of: device.info, limit: memoryLimit)
        self.holdsBufferMemory = holdsBufferMemory
        var status: cl_int = 0
        var deviceID: cl_device_id? = device.id
        guard let context = clCreateContext(nil, 1, &deviceID, nil, nil, &status), status == CL_SUCCESS else {
            throw OpenCLError(status: status, call: "clCreateContext", device: device.info.name)
        }
        let properties = cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE)
        guard let queue = clCreateCommandQueue(context, device.id, properties, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            throw OpenCLError(status: status, call: "clCreateCommandQueue", device: device.info.name)
        }
        self.context = context
        self.queue = queue
        self.profiling = true
        self.retainedDevice = nil
        self.programs = ProgramCache(diskCache: diskCache, logger: logger)
        LiveObjects.counters.contexts.increment()
        logger.debug("opened \(device.info.name) (\(device.info.platformName), driver \(device.info.driverVersion))")
    }

    /// Computes on a caller's OpenCL objects: `context`, a `device` of that context, and an
    /// in-order `queue` of that context and device, which the caller may keep using (the library
    /// enqueues behind whatever is already there). Retains all three and releases exactly those
    /// references when this object goes away, so the caller's objects stay valid and are the
    /// caller's to release. A queue without `CL_QUEUE_PROFILING_ENABLE` works; timings are then
    /// unavailable, not an error. Throws `AttentionError.invalidArgument` when the device is not
    /// in the context, the queue belongs to another context or device, or the queue executes out
    /// of order; `OpenCLError` when a query fails. `diskCache`, `logger` and `memoryLimit` as in
    /// `init(device:)`.
    public init(wrapping context: cl_context, device: cl_device_id, queue: cl_command_queue,
                diskCache: DiskProgramCache? = DiskProgramCache.fromEnvironment(),
                logger: Logger = Logger(label: "minference-cl"), memoryLimit: Int? = nil) throws {
        func info<T>(_ call: String, _ body: (UnsafeMutablePointer<T>) -> cl_int, _ initial: T) throws -> T {
            var value = initial
            try check(body(&value), call)
            return value
        }
        var contextDeviceCount: cl_uint = 0
        try check(clGetContextInfo(context, cl_context_info(CL_CONTEXT_NUM_DEVICES), MemoryLayout<cl_uint>.size, &contextDeviceCount, nil),
                  "clGetContextInfo(CL_CONTEXT_NUM_DEVICES)")
        var contextDevices = [cl_device_id?](repeating: nil, count: Int(contextDeviceCount))
        try check(clGetContextInfo(context, cl_context_info(CL_CONTEXT_DEVICES), MemoryLayout<cl_device_id?>.stride * contextDevices.count,
                                   &contextDevices, nil), "clGetContextInfo(CL_CONTEXT_DEVICES)")
        guard contextDevices.contains(where: { $0 == device }) else {
            throw AttentionError.invalidArgument("the device is not one of the context's \(contextDevices.count) device(s)")
        }
        let queueContext: cl_context? = try info("clGetCommandQueueInfo(CL_QUEUE_CONTEXT)", {
            clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_CONTEXT), MemoryLayout<cl_context?>.size, $0, nil)
        }, nil)
        let queueDevice: cl_device_id? = try info("clGetCommandQueueInfo(CL_QUEUE_DEVICE)", {
            clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_DEVICE), MemoryLayout<cl_device_id?>.size, $0, nil)
        }, nil)
        guard queueContext == context, queueDevice == device else {
            throw AttentionError.invalidArgument("the queue belongs to another \(queueContext == context ? "device" : "context")")
        }
        let properties: cl_command_queue_properties = try info("clGetCommandQueueInfo(CL_QUEUE_PROPERTIES)", {
            clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_PROPERTIES), MemoryLayout<cl_command_queue_properties>.size, $0, nil)
        }, 0)
        guard properties & cl_command_queue_properties(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) == 0 else {
            throw AttentionError.invalidArgument("the queue executes out of order; the library needs an in-order queue")
        }
        let platform: cl_platform_id? = try info("clGetDeviceInfo(CL_DEVICE_PLATFORM)", {
            clGetDeviceInfo(device, cl_device_info(CL_DEVICE_PLATFORM), MemoryLayout<cl_platform_id?>.size, $0, nil)
        }, nil)
        guard let platform else { throw AttentionError.invalidArgument("the device reports no platform") }
        let known = (try? ComputeDevice.all())?.first { $0.id == device }
        self.device = try known ?? ComputeDevice(index: -1, platformIndex: -1, indexInPlatform: -1,
                                                 info: DeviceInfo.query(platform: platform, device: device), id: device,
                                                 platformID: platform)
        self.diskCache = diskCache
        self.wgmmaCheck = true
        self.logger = logger
        (self.memoryBudget, self.maxAllocation, self.memoryLimit) = try Self.memoryLimits(of: self.device.info, limit: memoryLimit)
        self.holdsBufferMemory = false
        try check(clRetainContext(context), "clRetainContext")
        let retainedQueue = clRetainCommandQueue(queue)
        guard retainedQueue == CL_SUCCESS else {
            clReleaseContext(context)
            throw OpenCLError(status: retainedQueue, call: "clRetainCommandQueue", device: self.device.info.name)
        }
        if clRetainDevice(device) == CL_SUCCESS { self.retainedDevice = device } else { self.retainedDevice = nil }
        self.context = context
        self.queue = queue
        self.profiling = properties & cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) != 0
        self.programs = ProgramCache(diskCache: diskCache, logger: logger)
        LiveObjects.counters.contexts.increment()
        logger.debug("wrapped a caller's context on \(self.device.info.name)\(profiling ? "" : " (no profiling: timings unavailable)")")
    }

    /// Whether this context runs the Hopper wgmma path: on an NVIDIA device of compute capability
    /// 9.0, the first use builds a small wgmma kernel for sm_90a (two stages, `Sm90aBuild`) and runs
    /// it in a context of its own against a CPU product; if that fails, the reason is logged and
    /// the kernels take the mma.sync path. `MINFERENCECL_WGMMA=off` turns the path off. Decided once
    /// per context (thread-safe).
    public var wgmma: WGMMAStatus {
        wgmmaStatus.withLock { status in
            if let status { return status }
            let result = wgmmaCheck ? WGMMACheck.run(device: device, diskCache: diskCache, logger: logger)
                : .unavailable("the wgmma check's own context")
            if case .unavailable(let why) = result, device.info.nvidiaComputeCapability?.major == 9 {
                logger.warning("\(device.info.name): the wgmma path is off, the kernels take the mma.sync path: \(why)")
            } else {
                logger.debug("\(device.info.name): \(result)")
            }
            status = result
            return result
        }
    }

    /// The tile path the attention kernels of this context take for f16/bf16 inputs with head dim
    /// 64 or 128 (other problems take the portable path): `nvidia-wgmma`, `nvidia-mma` or `portable`.
    public var tensorCorePath: KernelConfig.Path {
        let info = device.info
        guard info.isNVIDIA, let cc = info.nvidiaComputeCapability, cc.major >= 8 else { return .portable }
        return cc.major == 9 && wgmma.isAvailable ? .nvidiaWGMMA : .nvidiaMMA
    }

    /// Opens the device chosen by `selector` (default: `MINFERENCECL_DEVICE`, then the first GPU,
    /// then the first CPU device).
    public convenience init(selector: DeviceSelector? = nil, diskCache: DiskProgramCache? = DiskProgramCache.fromEnvironment(),
                            logger: Logger = Logger(label: "minference-cl"), memoryLimit: Int? = nil,
                            holdsBufferMemory: Bool = false) throws {
        let chosen = selector ?? DeviceSelector.fromEnvironment(ProcessInfo.processInfo.environment)
        try self.init(device: chosen.select(from: ComputeDevice.all()), diskCache: diskCache, logger: logger,
                      memoryLimit: memoryLimit, holdsBufferMemory: holdsBufferMemory)
    }

    /// The memory one request may use and the largest single buffer on `info`'s device under
    /// `limit` (nil: `MINFERENCECL_MEMORY_LIMIT`, else the device's own limits), and that limit.
    private static func memoryLimits(of info: DeviceInfo, limit: Int?) throws -> (budget: Int, allocation: Int, limit: Int?) {
        let limit = try limit ?? memoryLimit(environment: ProcessInfo.processInfo.environment)
        if let limit, limit <= 0 { throw AttentionError.invalidArgument("memory limit \(limit): must be a positive number of bytes") }
        let global = info.globalMemoryBytes > 0 ? info.globalMemoryBytes : Int.max
        let allocation = info.maxAllocationBytes > 0 ? info.maxAllocationBytes : global
        return (min(global, limit ?? .max), min(allocation, limit ?? .max), limit)
    }

    /// What bounds single allocations, for messages.
    var allocationLimitName: String {
        maxAllocation < device.info.maxAllocationBytes || device.info.maxAllocationBytes <= 0
            ? "the memory limit" : "CL_DEVICE_MAX_MEM_ALLOC_SIZE"
    }

    /// What bounds a whole request, for messages.
    var memoryBudgetName: String {
        memoryBudget < device.info.globalMemoryBytes || device.info.globalMemoryBytes <= 0
            ? "the memory limit" : "CL_DEVICE_GLOBAL_MEM_SIZE"
    }

    /// `MINFERENCECL_MEMORY_LIMIT` in bytes (nil when unset or empty).
    static func memoryLimit(environment: [String: String]) throws -> Int? {
        guard let text = environment[memoryLimitVariable]?.trimmingSpaces(), !text.isEmpty else { return nil }
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var unit = 1
        if let last = digits.last, let u = units[Character(last.uppercased())] {
            unit = u
            digits = digits.dropLast()
        }
        guard let value = Int(digits), value > 0, !value.multipliedReportingOverflow(by: unit).overflow else {
            throw AttentionError.invalidArgument("\(memoryLimitVariable)=\(text): expected a positive number of bytes, optionally with K, M, G or T")
        }
        return value * unit
    }

    deinit {
        programs.removeAll()
        heldMemory.withLock { held in
            for address in held { clReleaseMemObject(OpaquePointer(bitPattern: address)) }
            held.removeAll()
        }
        // CLBlast caches programs per context in a process-wide cache; drop them with the context.
        if clblastUsed.load(ordering: .relaxed) { CLBlastClearCache() }
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
        if let retainedDevice { clReleaseDevice(retainedDevice) }
        LiveObjects.counters.contexts.decrement()
    }

    /// True for the first caller only: that caller warms CLBlast up for this context.
    func claimCLBlastWarmUp() -> Bool {
        clblastUsed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    }

    /// Waits until every command enqueued so far has finished.
    public func finish() throws {
        try check(clFinish(queue), "clFinish", device: device.info.name)
    }

    /// The program for `source` built with `options` (from memory, then disk, then compiled).
    package func program(_ source: KernelSource, options: BuildOptions) throws -> Program {
        try programs.program(source: source, options: options, context: self)
    }
}

