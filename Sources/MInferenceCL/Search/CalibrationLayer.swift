import FoundationEssentials

/// One layer's attention inputs on a calibration prompt: a folder holding q.npy `[Hq, N, d]`,
/// k.npy and v.npy `[Hkv, N, d]` (the layout of the real SmolLM2 slices in
/// Tests/MInferenceCLTests/Fixtures). The search reads q and
/// k (recall does not depend on v); `inspect` also reads v for the output error.
public struct CalibrationLayer: Sendable {
    /// The folder the layer was read from; names the layer in messages and reports.
    public var folder: String
    /// Queries, `[Hq, N, d]`.
    public var q: Tensor
    /// Keys, `[Hkv, N, d]`.
    public var k: Tensor
    /// Values, `[Hkv, N, d]`; only inspection needs them.
    public var v: Tensor?

    /// A layer from tensors in memory; `folder` names it in messages.
    public init(folder: String, q: Tensor, k: Tensor, v: Tensor? = nil) {
        self.folder = folder
        self.q = q
        self.k = k
        self.v = v
    }

    /// Reads `folder`/q.npy and k.npy, and v.npy when `values` is set (`bf16` as in
    /// ``NPYFile/read(_:bf16:)``). Throws ``TensorFileError``.
    public static func load(folder: String, values: Bool = false, bf16: Bool = false) throws -> CalibrationLayer {
        guard FileManager.default.fileExists(atPath: folder) else {
            throw TensorFileError.missing(path: folder + " (a layer folder with q.npy, k.npy, v.npy)")
        }
        let base = folder.hasSuffix("/") ? folder : folder + "/"
        return CalibrationLayer(folder: folder, q: try NPYFile.read(base + "q.npy", bf16: bf16), k: try NPYFile.read(base + "k.npy", bf16: bf16),
                                v: values ? try NPYFile.read(base + "v.npy", bf16: bf16) : nil)
    }

    /// The causal prefill problem of the layer; q is `[Hq, N, d]` (or `[1, Hq, N, d]`). Throws
    /// ``AttentionError`` (naming the folder) for mixed dtypes, a batch above 1, or q and k of
    /// different lengths.
    public func problem() throws -> AttentionProblem {
        guard q.dtype == k.dtype, v.map({ $0.dtype == q.dtype }) ?? true else {
            throw AttentionError.dtype("\(folder): q, k and v must share one dtype; got q \(q.dtype), k \(k.dtype)\(v.map { ", v \($0.dtype)" } ?? "")")
        }
        let problem: AttentionProblem
        do {
            problem = try AttentionProblem(q: q.shape, k: k.shape, v: v?.shape ?? k.shape, dtype: q.dtype)
        } catch let error as AttentionError {
            throw AttentionError.shape("\(folder): \(error)")
        }
        guard problem.batch == 1 else { throw AttentionError.shape("\(folder): a calibration layer holds one sequence; q is \(q.shape)") }
        guard problem.queryLength == problem.keyLength else {
            throw AttentionError.shape("\(folder): q has \(problem.queryLength) positions and k \(problem.keyLength); a calibration prefill has one length")
        }
        return problem
    }
}
