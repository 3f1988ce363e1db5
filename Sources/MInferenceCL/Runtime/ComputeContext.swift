import CCLBlast
import COpenCL
import FoundationEssentials
import Logging
import Synchronization

/// An OpenCL context and in-order profiling queue on one device, with the programs built for it.
/// The single owner of its `cl_context` and `cl_command_queue`; both are released in `deinit`.
/// Safe to share between threads: OpenCL queues are thread-safe and kernels are created per launch.
public final class ComputeContext: @unchecked Sendable {
    public let device: ComputeDevice
    let context: cl_context
    let queue: cl_command_queue
    let programs: ProgramCache
    let logger: Logger
    /// Whether CLBlast has compiled kernels for this context (its cache is cleared on release).
    private let clblastUsed = Atomic<Bool>(false)

    /// Opens `device`. `programCache` is the on-disk cache of built programs (nil: none).
    public init(device: ComputeDevice, diskCache: DiskProgramCache? = DiskProgramCache.fromEnvironment(),
                logger: Logger = Logger(label: "minference-cl")) throws {
        self.device = device
        self.logger = logger
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
        self.programs = ProgramCache(diskCache: diskCache, logger: logger)
        logger.debug("opened \(device.info.name) (\(device.info.platformName), driver \(device.info.driverVersion))")
    }

    /// Opens the device chosen by `selector` (default: `MINFERENCECL_DEVICE`, then the first GPU,
    /// then the first CPU device).
    public convenience init(selector: DeviceSelector? = nil, diskCache: DiskProgramCache? = DiskProgramCache.fromEnvironment(),
                            logger: Logger = Logger(label: "minference-cl")) throws {
        let chosen = selector ?? DeviceSelector.fromEnvironment(ProcessInfo.processInfo.environment)
        try self.init(device: chosen.select(from: ComputeDevice.all()), diskCache: diskCache, logger: logger)
    }

    deinit {
        programs.removeAll()
        // CLBlast caches programs per context in a process-wide cache; drop them with the context.
        if clblastUsed.load(ordering: .relaxed) { CLBlastClearCache() }
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
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
    func program(_ source: KernelSource, options: BuildOptions) throws -> Program {
        try programs.program(source: source, options: options, context: self)
    }
}

