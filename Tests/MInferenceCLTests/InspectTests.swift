import MInferenceCL
import RealModule
import Testing

/// The pictures' numbers against the float64 reference: the pooled dense attention map
/// (attention_map.cl), the covered share per cell, and what `inspect` reports per head.
@Suite("Inspect: attention maps and coverage against the float64 reference")
struct InspectTests {
    /// Pooled float64 probabilities on the cell grid of `AttentionRecall.attentionMaps`.
    static func referenceMap(_ reference: ReferenceAttention, head: Int, cells: Int, pooling: MapPooling) -> [Double] {
        let n = reference.problem.queryLength
        let bounds = (0...cells).map { $0 * n / cells }
        var map = [Double](repeating: -1, count: cells * cells)
        for r in 0..<cells {
            let rows = bounds[r]..<bounds[r + 1]
            let probabilities = rows.map { i -> [Double] in
                let logits = reference.logits(head: head, query: i, keys: 0...i)
                let peak = logits.max()!
                let weights = logits.map { Double.exp($0 - peak) }
                let total = weights.reduce(0, +)
                return weights.map { $0 / total }
            }
            for c in 0..<cells {
                let keys = bounds[c]..<bounds[c + 1]
                var best = -1.0, sum = 0.0, causal = 0
                for (i, row) in zip(rows, probabilities) {
                    for j in keys where j <= i {
                        best = max(best, row[j])
                        sum += row[j]
                        causal += 1
                    }
                }
                if causal > 0 { map[r * cells + c] = pooling == .max ? best : sum / Double(rows.count * keys.count) }
            }
        }
        return map
    }

    @Test(arguments: [(97, 13), (97, 97), (130, 64), (1, 5)], MapPooling.allCases)
    func attentionMapMatchesReference(shape: (length: Int, cells: Int), pooling: MapPooling) throws {
        let engine = try TestDevice.engine()
        let n = shape.length
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: n, keyLength: n, headDim: 64, inputDType: .f16)
        let inputs = try RandomInputs(problem: problem, seed: UInt64(n), scale: 1.5)
        let recall = try AttentionRecall(context: engine.context, problem: problem, q: try DeviceTensor(context: engine.context, copying: inputs.q),
                                         k: try DeviceTensor(context: engine.context, copying: inputs.k))
        let maps = try recall.attentionMaps(heads: [3, 0], cells: shape.cells, pooling: pooling)
        let cells = min(shape.cells, n)
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        for (map, head) in zip(maps, [3, 0]) {
            #expect(map.count == cells * cells)
            let expected = Self.referenceMap(reference, head: head, cells: cells, pooling: pooling)
            for (got, want) in zip(map, expected) {
                #expect(want < 0 ? got == -1 : abs(Double(got) - want) <= 1e-5 * max(1, want), "head \(head): \(got) vs \(want)")
            }
        }
    }

    @Test("Coverage maps count the reference's covered keys", arguments: [(333, 50), (200, 200), (64, 7)])
    func coverageMap(shape: (length: Int, cells: Int)) throws {
        let engine = try TestDevice.engine()
        let n = shape.length, cells = min(shape.cells, n)
        let problem = try AttentionProblem(headsQ: 6, headsKV: 2, queryLength: n, keyLength: n, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 5, scale: 1.5)
        let (_, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: SearchRecallTests.plan(heads: 6),
                                         options: SparseOptions(denseFallback: .never, collectIndices: true))
        let bounds = (0...cells).map { $0 * n / cells }
        for head in 0..<6 {
            let map = try HeadCoverage(report: report, head: head).coverageMap(length: n, cells: cells)
            var covered = [Int](repeating: 0, count: cells * cells), causal = [Int](repeating: 0, count: cells * cells)
            for r in 0..<cells {
                for i in bounds[r]..<bounds[r + 1] {
                    let keys = Set(SearchRecallTests.referenceKeys(report: report, head: head, query: i, length: n))
                    for c in 0..<cells {
                        for j in bounds[c]..<bounds[c + 1] where j <= i {
                            causal[r * cells + c] += 1
                            if keys.contains(j) { covered[r * cells + c] += 1 }
                        }
                    }
                }
            }
            for (e, value) in map.enumerated() {
                let want: Float = causal[e] == 0 ? -1 : Float(covered[e]) / Float(causal[e])
                #expect(value == want, "head \(head) cell \(e): \(value) vs \(want)")
            }
        }
    }

    @Test("Pictures: colours, background and layout")
    func pictures() {
        let map: [Float] = [1e-1, -1, 1e-5, 1]
        let heat = AttentionPicture.heatmap(map, cells: 2, decades: 4)
        #expect(heat[1, 0] == AttentionPicture.background)
        #expect(heat[1, 1] == Colormap.magma.color(1))  // the largest cell is the brightest
        #expect(heat[0, 1] == Colormap.magma.color(0))  // 5 decades below: clamped to the darkest
        #expect(heat[0, 0] == Colormap.magma.color(0.75))
        let mask = AttentionPicture.mask([1, -1, 0, 0.5], cells: 2)
        #expect(mask[0, 0] == AttentionPicture.covered)
        #expect(mask[1, 0] == AttentionPicture.background)
        #expect(mask[0, 1] == AttentionPicture.uncovered)
        let head = AttentionPicture.head(map: map, coverage: [1, -1, 0, 0.5], cells: 2, decades: 4)
        #expect(head.width == 4 + AttentionPicture.gap && head.height == 2)
        let overview = AttentionPicture.overview(maps: Array(repeating: map, count: 5), coverages: Array(repeating: [1, -1, 0, 0.5], count: 5),
                                                 cells: 2, tile: 1, columns: 3, pooling: .max, decades: 4)
        #expect(overview.width == 3 * (2 + AttentionPicture.gap) + 2 * 3 * AttentionPicture.gap)
        #expect(overview.height == 2 + 3 * AttentionPicture.gap)
    }

    @Test("Inspecting a layer: recall, density and output error per head")
    func inspection() throws {
        let engine = try TestDevice.engine()
        let layer = try CalibrationLayer.load(folder: fixturePath("smollm2-layer03-n300"), values: true)
        let plan = LayerPlan(heads: [.dense, .aShape(sink: 1, window: 300), .aShape(sink: 16, window: 64), .verticalSlash(vertical: 30, slash: 100),
                                     .verticalSlash(vertical: 64, slash: 150), .blockSparse(blocks: 2), .blockSparse(blocks: 100),
                                     .aShape(sink: 4, window: 32), .verticalSlash(vertical: 300, slash: 300)])
        let inspection = try LayerInspection(engine: engine, layer: layer, plan: plan, cells: 64, pooling: .mean)
        #expect(inspection.cells == 64)
        for head in inspection.heads {
            let n = 300
            #expect(head.map.count == 64 * 64 && head.coverage.count == 64 * 64)
            let full = head.density == 1
            // Covering everything: recall 1 and the dense output (fp32 outputs of two kernels).
            #expect(!full || (abs(head.recall - 1) < 1e-6 && head.outputError < 1e-5), "head \(head.head) \(head.pattern)")
            #expect(full || (head.recall < 1 && head.outputError > 1e-4), "head \(head.head) \(head.pattern)")
            #expect(head.cost.tiles >= KernelCost.rowBlocks(length: n))
        }
        #expect(inspection.heads[0].density == 1 && inspection.heads[1].density == 1 && inspection.heads[6].density == 1)
        #expect(inspection.table().split(separator: "\n").count == 2 + 9)
    }
}
