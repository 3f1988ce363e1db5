/// How a picture cell summarises the attention probabilities it holds.
public enum MapPooling: String, Sendable, Hashable, CaseIterable {
    /// The largest probability among the cell's causal pairs: single strong keys stay visible.
    case max
    /// The cell's probability sum over its area (zeros above the diagonal included).
    case mean
}

extension AttentionRecall {
    /// The dense causal attention maps of `heads` (flattened) pooled to `cells` x `cells`
    /// (CLKernels/attention_map.cl): row-major, cell (r, c) holding rows
    /// [r N / cells, (r + 1) N / cells) and the same keys range of c; -1 where a cell has no
    /// causal pair. `cells` is clamped to N.
    public func attentionMaps(heads: [Int], cells: Int, pooling: MapPooling) throws -> [[Float]] {
        let cells = max(1, min(cells, n))
        guard !heads.isEmpty else { return [] }
        if let bad = heads.first(where: { !(0..<(problem.batch * problem.headsQ)).contains($0) }) {
            throw AttentionError.invalidArgument("head \(bad) outside 0..<\(problem.batch * problem.headsQ)")
        }
        let program = try context.program(
            KernelSource.named("attention_map.cl"),
            options: BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "HEAD_DIM": "\(problem.headDim)"]))
        // One launch per head: a head is a dense QK^T's work, as long as a launch should be.
        let map = try DeviceBuffer(context: context, byteCount: cells * cells * 4, label: "attention map")
        return try heads.map { head in
            let slot = try DeviceBuffer(context: context, copying: [Int32(head)], label: "map head")
            try context.launch(program, "attention_map", global: [cells, cells, 1], local: nil,
                               [.buffer(q), .buffer(k), .buffer(slot), .buffer(rowMax), .buffer(rowSum), .int(n), .int(problem.headsQ),
                                .int(problem.headsKV), .float(scaleLog2), .int(cells), .int(pooling == .max ? 0 : 1), .buffer(map)]).wait()
            return try map.read(as: Float.self, count: cells * cells)
        }
    }
}
