/// Checks docs/NON-FINITE.md section 1 on a device: plants NaN, +Inf and -Inf in q, k and v, runs
/// a layer with the host check off, and compares every row with the float64 reference over the
/// keys the run covered (`ReferenceAttention`: a row that reads a non-finite value is NaN). With a
/// static key set (dense, A-shape, Tri-shape) a row that reads none must also keep the bits of the
/// same run on the unplanted inputs. Used by the tests (PoCL, Intel) and by `minference-bench
/// check` on each path a GPU has.
package enum NonFiniteCheck {
    package struct Outcome {
        package var metrics = ErrorMetrics()
        /// Rows the reference has NaN (the planted values must reach some rows and not all).
        package var nanRows = 0
        package var rows = 0
        /// Every disagreement, one line each; empty when the run is right.
        package var problems: [String] = []
    }

    /// `q`, `k`, `v` with `count` elements of `tensors` set to NaN, +Inf and -Inf at seeded random
    /// positions: the tensors in turn, each taking the three values in turn. k and v are planted in
    /// the later half of the keys, so that many rows do not read them.
    package static func planted(q: Tensor, k: Tensor, v: Tensor, problem: AttentionProblem, count: Int, seed: UInt64,
                                tensors: [String] = ["q", "k", "v"]) throws -> (q: Tensor, k: Tensor, v: Tensor) {
        var values = ["q": q.floats(), "k": k.floats(), "v": v.floats()]
        var random = SeededRandom(seed: seed)
        let specials: [Float] = [.nan, .infinity, -.infinity]
        let d = problem.headDim
        for n in 0..<count {
            let name = tensors[n % tensors.count]
            let index: Int
            if name == "q" {
                index = Int.random(in: 0..<values[name]!.count, using: &random)
            } else {
                let head = Int.random(in: 0..<(problem.batch * problem.headsKV), using: &random)
                let key = Int.random(in: problem.keyLength / 2..<problem.keyLength, using: &random)
                index = (head * problem.keyLength + key) * d + Int.random(in: 0..<d, using: &random)
            }
            values[name]![index] = specials[(n / tensors.count) % specials.count]
        }
        return (try Tensor(shape: q.shape, dtype: problem.inputDType, values: values["q"]!),
                try Tensor(shape: k.shape, dtype: problem.inputDType, values: values["k"]!),
                try Tensor(shape: v.shape, dtype: problem.inputDType, values: values["v"]!))
    }

    /// Runs `plan` on normal random inputs with `count` planted values and checks every row.
    /// Prefill (Nq = Nk) for every pattern; a chunk (Nq < Nk) for dense and A-shape plans.
    /// `estimation`: the estimate's products (nil: the device profile's).
    package static func check(engine: AttentionEngine, problem: AttentionProblem, plan: LayerPlan, count: Int, seed: UInt64,
                              tensors: [String] = ["q", "k", "v"], estimation: DeviceProfile.EstimationBackend? = nil) throws -> Outcome {
        let clean = problem.normalInputs(seed: seed)
        let (q, k, v) = try planted(q: clean.q, k: clean.k, v: clean.v, problem: problem, count: count, seed: seed &+ 1, tensors: tensors)
        let options = SparseOptions(denseFallback: .never, collectIndices: true, estimation: estimation)
        let (output, report) = try engine.run(q: q, k: k, v: v, plan: plan, options: options, checkFinite: false)
        let reference = ReferenceAttention(problem: problem, q: q, k: k, v: v)
        let staticKeys = plan.heads.allSatisfy { [HeadPattern.Kind.dense, .aShape, .triShape].contains($0.kind) }
        let covered: [Int: (Int) -> [Int]]
        if problem.queryLength == problem.keyLength {
            covered = LayerVerification.coveredKeys(report: report, reference: reference)
        } else {
            guard plan.heads.allSatisfy({ $0.kind == .dense || $0.kind == .aShape }) else {
                throw AttentionError.unsupported("the non-finite check runs chunks of dense and A-shape plans")
            }
            covered = Dictionary(uniqueKeysWithValues: (0..<(problem.batch * problem.headsQ)).map { head in
                (head, { query in (0..<problem.keyLength).filter {
                    MaskedKeyIndependence.attends(query: query, key: $0, problem: problem, pattern: plan.heads[head % problem.headsQ])
                } })
            })
        }
        let unplanted = staticKeys
            ? try engine.run(q: clean.q, k: clean.k, v: clean.v, plan: plan, options: options, checkFinite: false).output : nil
        var outcome = Outcome()
        let values = output.floats(), d = problem.headDim, n = problem.queryLength
        let rowBytes = d * problem.outputDType.byteCount
        var changed = 0
        for h in 0..<(problem.batch * problem.headsQ) {
            guard let keys = covered[h] else {
                outcome.problems.append("head \(h): no covered keys (indices not collected)")
                continue
            }
            for i in 0..<n {
                let expected = reference.output(head: h, query: i, keys: keys(i))
                outcome.rows += 1
                outcome.metrics.add(output: values[(h * n + i) * d..<(h * n + i + 1) * d], reference: expected)
                if expected[0].isNaN {
                    outcome.nanRows += 1
                } else if let unplanted {
                    let at = (h * n + i) * rowBytes
                    if output.bytes[at..<at + rowBytes] != unplanted.bytes[at..<at + rowBytes] {
                        if changed < 4 { outcome.problems.append("head \(h) row \(i) reads no planted value but changed bits") }
                        changed += 1
                    }
                }
            }
        }
        if changed > 4 { outcome.problems.append("\(changed) such rows in all") }
        if !outcome.metrics.nonFiniteAgree || !(outcome.metrics.relativeL2 <= Tolerance.relativeL2(problem)) {
            outcome.problems.append("output: \(outcome.metrics) (tolerance \(Tolerance.relativeL2(problem)))")
        }
        if outcome.nanRows == 0 || outcome.nanRows == outcome.rows {
            outcome.problems.append("the planted values reach \(outcome.nanRows) of \(outcome.rows) rows: the case tests nothing")
        }
        return outcome
    }
}
