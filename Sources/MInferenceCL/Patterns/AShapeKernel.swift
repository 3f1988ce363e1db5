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

    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, events: inout PhaseEvents) throws {
        let n = problem.keyLength
        // Budgets above Nk are clamped (they change nothing past Nk); Int32 arguments stay exact.
        let sinks = try scratch.copying(budgets.map { Int32(min($0.sink, n)) }, "sinks")
        let windows = try scratch.copying(budgets.map { Int32(min($0.window, n)) }, "windows")
        let rowBlocks = (problem.queryLength + config.queryTile - 1) / config.queryTile
        events.add(.kernel, try tensors.launch(
            "a_shape_attention", file: "a_shape_attention.cl", options: config.buildOptions(problem: problem), context: context,
            global: [rowBlocks * config.threads, slots.count], local: [config.threads, 1],
            [.buffer(slotBuffer), .buffer(sinks), .buffer(windows),
             .int(problem.queryLength), .int(n), .int(problem.headsQ), .int(problem.headsKV), .float(problem.scale * Float.log2e)]))
    }

    /// Causal pairs an A-shape head covers: per query position i in `positions`, min(i + 1, window)
    /// window keys plus the sink keys left of the window.
    static func coveredPairs(length n: Int, sink: Int, window: Int) -> Int {
        coveredPairs(positions: 0..<n, sink: sink, window: window)
    }

    /// The same over the query positions of a chunk.
    static func coveredPairs(positions: Range<Int>, sink: Int, window: Int) -> Int {
        var pairs = 0
        for i in positions {
            pairs += min(i + 1, window) + max(0, min(sink, i - window + 1))
        }
        return pairs
    }
}
