/// Tri-shape heads of a layer (docs/PREFILL-METHODS.md section 2): A-shape for the positions
/// before the last `last`, every causal key for those. Two launches over all its heads, on the
/// kernels the two parts are: the A-shape kernel on the rows before the dense tail (as a prefill,
/// or a chunk, of the first keys only: its rows read no later key), then the dense kernel on the
/// tail rows as a chunk over all keys. No index: the pattern is static.
struct TriShapeKernel {
    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    let slots: [Int32]
    let budgets: [(sink: Int, window: Int)]
    /// Dense rows at the end (shared by the heads of one launch).
    let last: Int
    var workspace: Workspace? = nil

    /// Position of query row 0 (0 in prefill, Nk - Nq for a chunk).
    var shift: Int { problem.keyLength - problem.queryLength }
    /// The first position that attends every causal key.
    var denseFrom: Int { max(shift, problem.keyLength - min(last, problem.keyLength)) }

    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, events: inout PhaseEvents) throws {
        let n = problem.keyLength
        let aShapeRows = denseFrom - shift
        if aShapeRows > 0 {
            var head = problem
            head.queryLength = aShapeRows
            head.keyLength = denseFrom
            let part = tensors.with(q: try tensors.q.rows(0..<aShapeRows), k: try tensors.k.rows(0..<denseFrom),
                                    v: try tensors.v.rows(0..<denseFrom), output: try tensors.output.rows(0..<aShapeRows))
            try AShapeKernel(context: context, problem: head, config: config, slots: slots, budgets: budgets, workspace: workspace)
                .run(tensors: part, slotBuffer: slotBuffer, events: &events)
        }
        if denseFrom < n {
            var tail = problem
            tail.queryLength = n - denseFrom
            let rows = aShapeRows..<problem.queryLength
            let part = tensors.with(q: try tensors.q.rows(rows), k: tensors.k, v: tensors.v, output: try tensors.output.rows(rows))
            events.add(.kernel, try DenseAttentionKernel(problem: tail, config: config)
                .enqueue(context: context, tensors: part, slots: slotBuffer, slotCount: slots.count))
        }
    }

    /// Causal pairs one head covers over the positions of the problem's queries.
    func coveredPairs(sink: Int, window: Int) -> Int {
        let n = problem.keyLength
        return AShapeKernel.coveredPairs(positions: shift..<denseFrom, sink: min(sink, n), window: min(window, n))
            + (denseFrom..<n).reduce(0) { $0 + $1 + 1 }
    }
}

extension DeviceTensor {
    /// The view of token rows `range` (dimension N of `[B, H, N, d]` or `[H, N, d]`): the same
    /// buffer, strides and layout, the offset moved to the first row.
    func rows(_ range: Range<Int>) throws -> DeviceTensor {
        let axis = shape.count - 2
        var shape = self.shape
        shape[axis] = range.count
        return try DeviceTensor(buffer: buffer, dtype: dtype, shape: shape, strides: strides,
                                offset: offset + (range.isEmpty ? 0 : range.lowerBound * strides[axis]))
    }
}
