/// Long-context-like q/k/v generated on the device (CLKernels/synthetic_input.cl): queries and
/// keys share a per-KV-head direction before RoPE, so scores depend mostly on the distance i - j
/// (local and periodic diagonals, the slash structure), and a set of "vertical" key columns (the
/// first 16 tokens and about `verticalCount` random positions) is boosted along a shared
/// direction for every query. Values are N(0, 1). Unlike uniform noise, this gives the sparse
/// patterns real structure to find.
package struct SyntheticInput: Sendable, Hashable {
    package var seed: UInt64
    /// Logit (after 1/sqrt(d)) that the shared direction adds at distance 0.
    package var localLogit: Float = 8
    /// Logit that a vertical column adds for every query.
    package var verticalLogit: Float = 6
    package var ropeTheta: Float = 500_000
    package var verticalCount: Int = 184

    package init(seed: UInt64 = 1) { self.seed = seed }

    /// Plain random inputs through the same generator: no shared direction, no vertical columns
    /// (q and k are RoPE-rotated N(0, 1) noise).
    package static func random(seed: UInt64) -> SyntheticInput {
        var input = SyntheticInput(seed: seed)
        input.localLogit = 0
        input.verticalLogit = 0
        return input
    }

    /// Generates q `[B*Hq, n, d]`, k and v `[B*Hkv, n, d]` on the device.
    package func generate(context: ComputeContext, problem: AttentionProblem) throws -> (q: DeviceTensor, k: DeviceTensor, v: DeviceTensor) {
        let d = problem.headDim
        guard d % 2 == 0 else { throw AttentionError.unsupported("synthetic inputs need an even head dim") }
        let kvHeads = problem.batch * problem.headsKV
        // Unit directions a and u per KV head, drawn on the host (tiny).
        var random = SeededRandom(seed: seed ^ 0xd1b5_4a32_d192_ed03)
        var directions: [Float] = []
        for _ in 0..<(2 * kvHeads) {
            let x = random.normals(d)
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            directions += x.map { $0 / norm }
        }
        let directionBuffer = try DeviceBuffer(context: context, copying: directions, label: "synthetic directions")
        let root = Float(d).squareRoot().squareRoot()
        let alpha = localLogit.squareRoot() * root
        let boost = verticalLogit.squareRoot() * root
        let program = try context.program(
            KernelSource.named("synthetic_input.cl"),
            options: BuildOptions(defines: ["HEAD_DIM": "\(d)", "INPUT_DTYPE": problem.inputDType.kernelName,
                                            "OUTPUT_DTYPE": problem.inputDType.kernelName]))
        func make(kind: Int, heads: Int, label: String) throws -> DeviceTensor {
            let t = try DeviceTensor(context: context, shape: [heads, problem.keyLength, d], dtype: problem.inputDType, label: label)
            try context.launch(program, "synthetic_input", global: [d / 2, problem.keyLength, heads], local: nil,
                               [.buffer(t.buffer), .buffer(directionBuffer), .int(kind), .int(problem.keyLength), .int(heads),
                                .int(kind == 0 ? problem.groupSize : 1), .uint(UInt32(truncatingIfNeeded: seed)),
                                .float(alpha), .float(boost), .float(ropeTheta), .int(verticalCount)])
            return t
        }
        guard problem.queryLength == problem.keyLength else {
            throw AttentionError.unsupported("synthetic inputs are generated for prefill (Nq == Nk)")
        }
        let q = try make(kind: 0, heads: problem.batch * problem.headsQ, label: "synthetic q")
        let k = try make(kind: 1, heads: kvHeads, label: "synthetic k")
        let v = try make(kind: 2, heads: kvHeads, label: "synthetic v")
        try context.finish()
        return (q, k, v)
    }

    /// `generate`, read back into host tensors of the problem's q and k/v shapes.
    package func generateOnHost(context: ComputeContext, problem: AttentionProblem) throws -> (q: Tensor, k: Tensor, v: Tensor) {
        let (q, k, v) = try generate(context: context, problem: problem)
        return (try q.download().reshaped(problem.queryShape), try k.download().reshaped(problem.keyShape),
                try v.download().reshaped(problem.keyShape))
    }
}
