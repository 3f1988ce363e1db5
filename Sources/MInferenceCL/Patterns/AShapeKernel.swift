/// A-shape heads of a layer in one launch (docs/MINFERENCE.md section 3): the first `sink` keys
/// and the last `window` keys up to each query, element-exact. No index building: the pattern is
/// static, and as its key set does not depend on the row blocking it runs on the dense tile
/// configuration (128-row work-groups on NVIDIA) instead of upstream's 64-row blocks.
struct AShapeKernel {
    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    let slots: [Int32]
    let budgets: [(sink: Int, window: Int)]
    /// Buffers from this workspace (nil: fresh ones per call).
    var workspace: Workspace? = nil
    var scratch: Scratch { Scratch(context: context, workspace: workspace) }

    func run(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, slotBuffer: DeviceBuffer,
             timing: inout PhaseTiming) throws {
        let n = problem.queryLength
        let program = try context.program(
            KernelSource.named("a_shape_attention.cl"),
            options: config.buildOptions(problem: problem))
        // Budgets above N are clamped (they change nothing past N); Int32 arguments stay exact.
        let sinks = try scratch.copying(budgets.map { Int32(min($0.sink, n)) }, "sinks")
        let windows = try scratch.copying(budgets.map { Int32(min($0.window, n)) }, "windows")
        let rowBlocks = (n + config.queryTile - 1) / config.queryTile
        let event = try context.launch(
            program, "a_shape_attention", global: [rowBlocks * config.threads, slots.count], local: [config.threads, 1],
            [.buffer(q), .buffer(k), .buffer(v), .buffer(output), .buffer(slotBuffer), .buffer(sinks), .buffer(windows),
             .int(n), .int(problem.headsQ), .int(problem.headsKV), .float(problem.scale * Float.log2e)])
        try timing.add(.kernel, event)
    }

    /// Causal pairs an A-shape head covers: per query i, min(i + 1, window) window keys plus the
    /// sink keys left of the window.
    static func coveredPairs(length n: Int, sink: Int, window: Int) -> Int {
        var pairs = 0
        for i in 0..<n {
            pairs += min(i + 1, window) + max(0, min(sink, i - window + 1))
        }
        return pairs
    }
}
