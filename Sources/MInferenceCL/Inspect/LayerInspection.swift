/// What `minference-cl inspect` shows for one layer under a plan: per head the pattern that ran,
/// its recall, density and kernel cost, the error of its output against dense attention, and
/// the pooled dense attention map with the pattern's covered mask on the same cell grid.
public struct LayerInspection: Sendable {
    /// One query head's measurements.
    public struct Head: Sendable {
        /// The query head.
        public var head: Int
        /// The pattern the head ran.
        public var pattern: HeadPattern
        /// Mean share of the dense softmax mass inside the covered set (AttentionRecall).
        public var recall: Double
        /// Covered share of the causal pairs.
        public var density: Double
        /// The tiles the head's kernel visited.
        public var cost: KernelCost
        /// ‖sparse − dense‖ / ‖dense‖ of the head's output, both computed in fp32 outputs.
        public var outputError: Double
        /// Pooled dense attention map (`cells` x `cells`, row-major, -1 above the diagonal; see
        /// ``AttentionRecall/attentionMaps(heads:cells:pooling:)``).
        public var map: [Float]
        /// Covered share per cell on the same grid (see ``HeadCoverage/coverageMap(length:cells:)``).
        public var coverage: [Float]
    }

    /// The layer's causal prefill problem.
    public var problem: AttentionProblem
    /// Side of the pictures' cell grid (clamped to N).
    public var cells: Int
    /// How the maps' cells summarise their probabilities.
    public var pooling: MapPooling
    /// Every query head, in head order.
    public var heads: [Head]

    /// Runs `plan` on the layer (sparse patterns as requested, no dense fallback, indices kept)
    /// and dense attention, then measures every head. `layer` must hold v
    /// (``AttentionError/invalidArgument(_:)`` otherwise); errors of ``CalibrationLayer/problem()``,
    /// of the runs and of the device are passed on.
    public init(engine: AttentionEngine, layer: CalibrationLayer, plan: LayerPlan, cells: Int, pooling: MapPooling,
                progress: (String) -> Void = { _ in }) throws {
        guard let v = layer.v else { throw AttentionError.invalidArgument("\(layer.folder): inspect needs v.npy") }
        let problem = try layer.problem()
        let context = engine.context
        let n = problem.queryLength, d = problem.headDim
        progress("sparse attention")
        let (sparse, report) = try engine.run(q: layer.q, k: layer.k, v: v, plan: plan, outputDType: .f32,
                                              options: SparseOptions(denseFallback: .never, collectIndices: true))
        progress("dense attention")
        let dense = try engine.dense(q: layer.q, k: layer.k, v: v, outputDType: .f32).output.floats()
        let sparseValues = sparse.floats()
        progress("recall")
        let recall = try AttentionRecall(context: context, problem: problem, q: try DeviceTensor(context: context, copying: layer.q),
                                         k: try DeviceTensor(context: context, copying: layer.k))
        let coverages = try (0..<problem.headsQ).map { try HeadCoverage(report: report, head: $0) }
        let recalls = try recall.recall(coverages.enumerated().map { ($0.offset, $0.element) })
        progress("attention maps")
        let cells = max(1, min(cells, n))
        let maps = try recall.attentionMaps(heads: Array(0..<problem.headsQ), cells: cells, pooling: pooling)
        self.problem = problem
        self.cells = cells
        self.pooling = pooling
        heads = (0..<problem.headsQ).map { h in
            var metrics = ErrorMetrics()
            let rows = (h * n * d)..<((h + 1) * n * d)
            metrics.add(output: sparseValues[rows], reference: dense[rows].map(Double.init))
            return Head(head: h, pattern: report.executed[h], recall: recalls[h], density: report.density(head: h),
                        cost: coverages[h].cost(length: n), outputError: metrics.relativeL2, map: maps[h],
                        coverage: coverages[h].coverageMap(length: n, cells: cells))
        }
    }

    /// A row per head: pattern, recall, density, FLOPs share and output error.
    public func table() -> String {
        Table(header: ["head", "pattern", "recall", "density", "FLOPs", "rel err"], rows: heads.map { h in
            ["\(h.head)", h.pattern.description, Format.fixed(h.recall, 4), Format.fixed(100 * h.density, 1) + "%",
             Format.fixed(100 * h.cost.share, 1) + "%", Format.scientific(h.outputError)]
        }).render()
    }
}
