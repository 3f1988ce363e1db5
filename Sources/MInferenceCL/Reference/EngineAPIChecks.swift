/// Checks of the engine API that the tests (PoCL) and `minference-bench check` (every path a GPU
/// has) share: a chunk of a prefill against the whole prompt, and a token-major view in a larger
/// buffer against the contiguous tensors.
package enum EngineAPIChecks {
    /// Runs the chunk `start..<Nk` of a prompt (queries at the end) and the whole prompt of length
    /// Nk with `plan`, and compares: the chunk's index lists with the whole prompt's rows from the
    /// chunk's first block, its covered pairs with the whole prompt's keys over the chunk's rows,
    /// and its rows with the float64 reference over those keys. For shapes where the chunk's rows
    /// are defined to equal the whole prompt's (`LayerPlan.validate`). The reference compares every
    /// `rowStride`-th row of the chunk (and its last). Returns the error of the rows and every
    /// disagreement, one line each.
    package static func chunkAgainstWholePrompt(engine: AttentionEngine, q: Tensor, k: Tensor, v: Tensor, plan: LayerPlan,
                                                start: Int, rowStride: Int = 1) throws -> (metrics: ErrorMetrics, problems: [String]) {
        let n = q.shape[q.shape.count - 2]
        let options = SparseOptions(denseFallback: .never, collectIndices: true)
        let (_, whole) = try engine.run(q: q, k: k, v: v, plan: plan, options: options, checkFinite: false)
        let (chunk, report) = try engine.run(q: q.tokens(start..<n), k: k, v: v, plan: plan, options: options, checkFinite: false)
        var problems: [String] = []
        let first = start / 64
        for (got, want) in zip(report.indices.verticalSlash, whole.indices.verticalSlash) {
            if got.verticals != want.verticals || got.slashOffsets != want.slashOffsets {
                problems.append("head \(got.head): the chunk selected other verticals or slashes than the whole prompt")
            }
            if got.firstRowBlock != first || got.blockCount != Array(want.blockCount[first...])
                || got.columnCount != Array(want.columnCount[first...]) {
                problems.append("head \(got.head): the chunk's block index differs from the whole prompt's from block \(first)")
            }
        }
        for (got, want) in zip(report.indices.blockSparse, whole.indices.blockSparse)
        where got.firstQueryBlock != first || got.selected != Array(want.selected[first...]) {
            problems.append("head \(got.head): the chunk selected other key blocks than the whole prompt")
        }
        let reference = ReferenceAttention(problem: whole.problem, q: q, k: k, v: v)
        let covered = LayerVerification.coveredKeys(report: whole, reference: reference)
        var metrics = ErrorMetrics()
        let values = chunk.floats(), d = whole.problem.headDim, rows = n - start
        for head in 0..<(whole.problem.batch * whole.problem.headsQ) {
            guard let keysOf = covered[head] else {
                problems.append("head \(head): the whole prompt's run collected no indices")
                continue
            }
            var pairs = 0
            for i in 0..<rows {
                let keys = keysOf(start + i)
                pairs += keys.count
                guard i % rowStride == 0 || i == rows - 1 else { continue }
                let base = (head * rows + i) * d
                metrics.add(output: values[base..<(base + d)], reference: reference.output(head: head, query: start + i, keys: keys))
            }
            let h = head % whole.problem.headsQ
            if head < whole.problem.headsQ, report.coveredPairs[h] != pairs * whole.problem.batch,
               whole.problem.batch == 1 {
                problems.append("head \(h): the chunk reports \(report.coveredPairs[h]) covered pairs, its keys are \(pairs)")
            }
        }
        let tolerance = Tolerance.relativeL2(whole.problem)
        if metrics.nonFinite > 0 || !(metrics.relativeL2 <= tolerance) {
            problems.append("chunk rows: \(metrics) (tolerance \(tolerance))")
        }
        return (metrics, problems)
    }

    /// Runs `plan` on contiguous tensors and on FlashAttention-layout (`[B, N, H, d]`) views at an
    /// element offset inside larger buffers (q, k, v and the output); the outputs must be equal bit
    /// for bit, and the buffer around the output view untouched. Returns the disagreements.
    package static func tokenMajorAgainstContiguous(engine: AttentionEngine, problem: AttentionProblem, plan: LayerPlan,
                                                    seed: UInt64, offset: Int = 40) throws -> [String] {
        let context = engine.context
        let (q, k, v) = problem.normalInputs(seed: seed)
        let options = SparseOptions(denseFallback: .never)
        let (expected, _) = try engine.run(q: q, k: k, v: v, plan: plan, options: options, checkFinite: false)
        let element = problem.inputDType.byteCount
        func view(_ t: Tensor, fill: UInt8? = nil) throws -> DeviceTensor {
            let body = fill.map { [UInt8](repeating: $0, count: t.bytes.count) } ?? t.tokenMajorBytes()
            let pad = [UInt8](repeating: 0x5A, count: offset * element)
            let buffer = try DeviceBuffer(context: context, byteCount: body.count + 2 * pad.count, label: "token-major")
            try (pad + body + pad).withUnsafeBytes { try buffer.write($0) }
            return try DeviceTensor(buffer: buffer, dtype: t.dtype, shape: t.shape, strides: DeviceTensor.tokenMajorStrides(t.shape),
                                    offset: offset)
        }
        let out = try view(expected, fill: 0xFF)
        _ = try engine.run(problem: problem, q: try view(q), k: try view(k), v: try view(v), output: out, plan: plan, options: options)
        var problems: [String] = []
        if try out.download() != expected {
            problems.append("the [B, N, H, d] views at offset \(offset) give other output bits than the contiguous tensors")
        }
        var raw = [UInt8](repeating: 0, count: out.buffer.byteCount)
        try raw.withUnsafeMutableBytes { try out.buffer.read(into: $0) }
        let pad = offset * problem.outputDType.byteCount
        if raw.prefix(pad).contains(where: { $0 != 0x5A }) || raw.suffix(pad).contains(where: { $0 != 0x5A }) {
            problems.append("bytes outside the output view changed")
        }
        return problems
    }
}

extension Tensor {
    /// Rows `range` of the token axis of a `[B, H, N, d]` (or `[H, N, d]`) tensor.
    package func tokens(_ range: Range<Int>) -> Tensor {
        let n = shape[shape.count - 2], row = shape[shape.count - 1] * dtype.byteCount
        let heads = shape.dropLast(2).reduce(1, *)
        var out: [UInt8] = []
        out.reserveCapacity(heads * range.count * row)
        for head in 0..<heads {
            let base = (head * n + range.lowerBound) * row
            out += bytes[base..<(base + range.count * row)]
        }
        var newShape = shape
        newShape[shape.count - 2] = range.count
        return Tensor(unchecked: newShape, dtype: dtype, bytes: out)
    }

    /// The bytes of a `[B, H, N, d]` (or `[H, N, d]`) tensor in FlashAttention's `[B, N, H, d]` order.
    package func tokenMajorBytes() -> [UInt8] {
        let (h, n) = (shape[shape.count - 3], shape[shape.count - 2]), row = shape[shape.count - 1] * dtype.byteCount
        let batch = shape.count == 4 ? shape[0] : 1
        var out = [UInt8](repeating: 0, count: bytes.count)
        for b in 0..<batch {
            for head in 0..<h {
                for i in 0..<n {
                    let from = ((b * h + head) * n + i) * row, to = ((b * n + i) * h + head) * row
                    out.replaceSubrange(to..<(to + row), with: bytes[from..<(from + row)])
                }
            }
        }
        return out
    }
}
