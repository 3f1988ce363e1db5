import FoundationEssentials
import Logging

/// Runs attention on one device: validates the request, picks kernel configurations from the
/// tuning table, builds (or fetches cached) programs and enqueues them. Thread-safe.
public final class AttentionEngine: Sendable {
    /// The device, queue and program cache every call of this engine runs on; tensors passed to
    /// the device-tensor calls must live in its OpenCL context.
    public let context: ComputeContext
    /// The table the kernel configurations are chosen from (``TuningTable/standard`` by default).
    public let tuning: TuningTable
    let tuningOverride: String?
    let logger: Logger

    /// An engine on `context` that picks kernel configurations from `tuning` (default: the
    /// measured ``TuningTable/standard``). `tuningOverride` (default: `MINFERENCECL_TUNING`) forces
    /// table choices, e.g. `path=portable` or `query_tile=64,key_tile=16`. Makes no OpenCL calls:
    /// programs are built on first use.
    public init(context: ComputeContext, tuning: TuningTable = .standard,
                tuningOverride: String? = ProcessInfo.processInfo.environment["MINFERENCECL_TUNING"]) {
        self.context = context
        self.tuning = tuning
        self.tuningOverride = tuningOverride
        self.logger = context.logger
    }

    /// The kernel configuration this engine uses for `problem` (tuning table row, device limits).
    public func kernelConfig(for problem: AttentionProblem) -> KernelConfig { config(for: problem) }

    func config(for problem: AttentionProblem) -> KernelConfig {
        let info = context.device.info
        // The check runs only where the path could apply (it answers at once off Hopper).
        let wgmma = KernelConfig.nvidiaMMAApplies(device: info, dtype: problem.inputDType, headDim: problem.headDim)
            && context.wgmma.isAvailable
        return tuning.config(for: info, dtype: problem.inputDType, headDim: problem.headDim, wgmma: wgmma,
                             override: tuningOverride, logger: logger)
    }

    /// Dense attention of host tensors; returns the output (in `outputDType`, default the input
    /// dtype) and the device time of the kernel. With `checkFinite` (the default) a NaN or
    /// infinity in q, k or v is refused with `AttentionError.nonFinite` naming its position;
    /// without it, a row that reads one (its q row, or the k or v row of a key it covers) is NaN
    /// and every other row is unchanged (docs/NON-FINITE.md).
    public func dense(q: Tensor, k: Tensor, v: Tensor, causal: Bool = true, scale: Float? = nil,
                      outputDType: DType? = nil, checkFinite: Bool = true) throws -> AttentionResult {
        let problem = try Self.problem(q: q, k: k, v: v, causal: causal, scale: scale, outputDType: outputDType)
        if checkFinite { try Self.checkFinite(q: q, k: k, v: v) }
        try checkDeviceMemory(problem: problem, plan: nil)
        let dq = try DeviceTensor(context: context, copying: q, label: "q")
        let dk = try DeviceTensor(context: context, copying: k, label: "k")
        let dv = try DeviceTensor(context: context, copying: v, label: "v")
        let out = try DeviceTensor(context: context, shape: q.shape, dtype: problem.outputDType, label: "output")
        let timing = try withScratch(nil) {
            try dense(problem: problem, q: dq, k: dk, v: dv, output: out, scratch: $0, inputsChecked: checkFinite)
        }
        return AttentionResult(output: try out.download(), problem: problem, timing: timing)
    }

    /// Dense attention of device tensors into `output` (shaped like q); waits for it. With a
    /// `workspace`, the head list lives there (no allocation after the first call).
    public func dense(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
                      output: DeviceTensor, workspace: Workspace? = nil) throws -> PhaseTiming {
        try withScratch(workspace) { try dense(problem: problem, q: q, k: k, v: v, output: output, scratch: $0) }
    }

    /// Runs `body` with a call's buffer source: `workspace`, held for this call alone, or fresh buffers.
    func withScratch<T>(_ workspace: Workspace?, _ body: (Scratch) throws -> T) throws -> T {
        guard let workspace else { return try body(Scratch(context: context, workspace: nil)) }
        return try workspace.serving(self) { try body(Scratch(context: context, workspace: workspace)) }
    }

    func dense(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
               scratch: Scratch, inputsChecked: Bool = false) throws -> PhaseTiming {
        try checkTensors(problem: problem, q: q, k: k, v: v, output: output)
        try checkDeviceMemory(problem: problem, plan: nil)
        var events = PhaseEvents()
        let (tensors, scan) = try layerTensors(problem: problem, q: q, k: k, v: v, output: output, scratch: scratch,
                                               inputsChecked: inputsChecked)
        events.add(.nonFiniteScan, scan)
        let kernel = DenseAttentionKernel(problem: problem, config: config(for: problem))
        let heads = problem.batch * problem.headsQ
        let slots = try scratch.copying((0..<heads).map { Int32($0) }, "heads")
        events.add(.kernel, try kernel.enqueue(context: context, tensors: tensors, slots: slots, slotCount: heads))
        return try PhaseTiming(waitingFor: events)
    }

    /// Throws `AttentionError.nonFinite` for the first NaN or infinity in q, then k, then v.
    public static func checkFinite(q: Tensor, k: Tensor, v: Tensor) throws {
        try q.checkFinite(name: "q")
        try k.checkFinite(name: "k")
        try v.checkFinite(name: "v")
    }

    /// The problem described by host tensors, with their dtypes checked.
    static func problem(q: Tensor, k: Tensor, v: Tensor, causal: Bool, scale: Float?, outputDType: DType?) throws -> AttentionProblem {
        guard q.dtype == k.dtype, k.dtype == v.dtype else {
            throw AttentionError.dtype("q, k and v must share one dtype; got q \(q.dtype), k \(k.dtype), v \(v.dtype)")
        }
        return try AttentionProblem(q: q.shape, k: k.shape, v: v.shape, dtype: q.dtype, outputDType: outputDType,
                                    causal: causal, scale: scale)
    }

    /// Checks device tensors against the problem and this engine; returns them as the kernels
    /// take them. Each must have the problem's logical shape, `[B, H, N, d]` (or `[H, N, d]` when B
    /// is 1), and dtype: equal element counts are not enough (a `[N, H, d]` tensor would be read
    /// as `[H, N, d]`); its buffer must be in this engine's OpenCL context; its offset and strides
    /// multiples of 8 elements (every row 16-byte aligned); the output must not overlap itself or
    /// an input.
    func checkTensors(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
                      output: DeviceTensor) throws {
        let all = [("q", q, problem.queryShape, problem.inputDType), ("k", k, problem.keyShape, problem.inputDType),
                   ("v", v, problem.keyShape, problem.inputDType), ("output", output, problem.queryShape, problem.outputDType)]
        for (name, t, shape, dtype) in all {
            guard t.shape == shape || (problem.batch == 1 && t.shape == Array(shape.dropFirst())) else {
                throw AttentionError.shape("\(name) has shape \(t.shape); the problem needs \(shape)"
                                           + (problem.batch == 1 ? " or \(Array(shape.dropFirst()))" : "") + " ([B, H, N, d])")
            }
            guard t.dtype == dtype else { throw AttentionError.dtype("\(name) is \(t.dtype); the problem needs \(dtype)") }
            guard t.buffer.clContext == context.context else {
                throw AttentionError.invalidArgument("\(name)'s buffer belongs to another OpenCL context than the engine's")
            }
            guard t.layout.isAligned else {
                throw AttentionError.invalidArgument(
                    "\(name)'s offset \(t.offset) and strides \(t.strides) must be multiples of 8 elements (rows 16-byte aligned)")
            }
        }
        guard output.isNonOverlapping else {
            throw AttentionError.invalidArgument("the output's strides \(output.strides) make elements overlap")
        }
        for (name, input) in [("q", q), ("k", k), ("v", v)] where input.buffer.mem == output.buffer.mem && input.span.overlaps(output.span) {
            throw AttentionError.invalidArgument("the output overlaps \(name) in the same buffer")
        }
    }

    /// Tensors that passed `checkTensors`, with the call's non-finite flags (`NonFiniteFlags`):
    /// scanned on the device, or, when the caller has checked q, k and v to be finite
    /// (`inputsChecked`), none. Returns the scan's events (none without a scan) for the call's timing.
    func layerTensors(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                      scratch: Scratch, inputsChecked: Bool) throws -> (LayerTensors, [CommandEvent]) {
        if inputsChecked {
            return (LayerTensors(q: q, k: k, v: v, output: output, nonFinite: try NonFiniteFlags.none(context: context, scratch: scratch)), [])
        }
        let (flags, scan) = try NonFiniteFlags.scan(context: context, problem: problem, q: q, k: k, v: v, scratch: scratch)
        return (LayerTensors(q: q, k: k, v: v, output: output, nonFinite: flags), scan)
    }
}

/// The commands of a call per phase, in enqueue order; nothing is waited for until a
/// `PhaseTiming` is made of them.
struct PhaseEvents {
    private(set) var entries: [(phase: PhaseTiming.Phase, event: CommandEvent)] = []

    mutating func add(_ phase: PhaseTiming.Phase, _ event: CommandEvent) { entries.append((phase, event)) }
    mutating func add(_ phase: PhaseTiming.Phase, _ events: [CommandEvent]) { for e in events { add(phase, e) } }
    /// `events` as the first commands (enqueued before the others).
    mutating func prepend(_ phase: PhaseTiming.Phase, _ events: [CommandEvent]) { entries.insert(contentsOf: events.map { (phase, $0) }, at: 0) }

    /// The last command enqueued.
    var last: CommandEvent? { entries.last?.event }
}

/// The output of an attention call with what it cost.
public struct AttentionResult: Sendable {
    /// The attention output, shaped like q, in the problem's output dtype.
    public let output: Tensor
    /// The problem that ran, as read from the tensors' shapes and the call's options.
    public let problem: AttentionProblem
    /// The device time of the kernel (``PhaseTiming/Phase/kernel``); unavailable on a queue
    /// without profiling.
    public let timing: PhaseTiming
}

/// Device time of an attention pipeline split into its phases, from OpenCL profiling events.
public struct PhaseTiming: Sendable, Equatable {
    /// A step of a pattern's pipeline; dense and A-shape heads have only ``kernel``.
    public enum Phase: String, Sendable, CaseIterable {
        /// The estimate the indices are chosen from: vertical-slash's last-64-query logits and
        /// column and diagonal scores, block-sparse's mean pooling and block scores.
        case estimation
        /// Index building: the top-k selection, and for vertical-slash the conversion to
        /// upstream's block-form lists.
        case indices
        /// The attention kernel itself.
        case kernel
        /// The scan of q, k and v for NaN and infinities (nonfinite_keys.cl, `NonFiniteFlags`),
        /// once per call before its kernels (none when the host checked the inputs); counted with
        /// the layer's first pattern group.
        case nonFiniteScan = "non-finite scan"
    }

    private var nanoseconds: [Phase: UInt64] = [:]
    /// Device clock (ns) of the first command's start and the last command's end.
    private var firstStart: UInt64?
    private var lastEnd: UInt64?
    /// False when a command ran on a queue without profiling (a caller's queue): the times are
    /// then zeros, not measurements.
    public private(set) var isAvailable = true

    /// An empty timing: every phase 0 ms, available (what ``LayerResult/totalTiming`` sums into).
    public init() {}

    /// Waits for every command of `events` and sums their device time per phase.
    init(waitingFor events: PhaseEvents) throws {
        for (phase, event) in events.entries { try add(phase, event) }
    }

    /// Waits for `event` and adds its device time to `phase` (nothing, and `isAvailable` false,
    /// on a queue without profiling).
    mutating func add(_ phase: Phase, _ event: CommandEvent) throws {
        guard let (start, end) = try event.profiledInterval() else {
            isAvailable = false
            return
        }
        nanoseconds[phase, default: 0] += end &- start
        firstStart = min(firstStart ?? start, start)
        lastEnd = max(lastEnd ?? end, end)
    }

    mutating func add(_ phase: Phase, _ events: [CommandEvent]) throws {
        for e in events { try add(phase, e) }
    }

    mutating func add(_ other: PhaseTiming) {
        isAvailable = isAvailable && other.isAvailable
        for (phase, ns) in other.nanoseconds { nanoseconds[phase, default: 0] += ns }
        if let start = other.firstStart { firstStart = min(firstStart ?? start, start) }
        if let end = other.lastEnd { lastEnd = max(lastEnd ?? end, end) }
    }

    /// Whether a command of `phase` was timed.
    package func contains(_ phase: Phase) -> Bool { nanoseconds[phase] != nil }

    /// Sum of the device time of the phase's commands (an in-order queue runs them one by one).
    public func milliseconds(_ phase: Phase) -> Double { Double(nanoseconds[phase] ?? 0) / 1e6 }

    /// Sum over all phases: the device time of the commands, without the gaps between them.
    public var totalMilliseconds: Double { Phase.allCases.reduce(0) { $0 + milliseconds($1) } }

    /// From the first command's start to the last command's end on the device, gaps included
    /// (how CUDA events around a whole call time it); 0 when nothing ran.
    public var spanMilliseconds: Double {
        guard let firstStart, let lastEnd, lastEnd > firstStart else { return 0 }
        return Double(lastEnd - firstStart) / 1e6
    }
}
