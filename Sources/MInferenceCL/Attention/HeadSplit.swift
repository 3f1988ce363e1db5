/// The tensor-parallel split of a layer's heads across devices, as engines shard attention
/// (Megatron-LM's layout): part i takes a contiguous range of KV heads and the query heads that
/// read them, so each device computes its heads with no communication, and the parts' output heads
/// concatenate to the layer's output. Each part is a problem of its own, run by the engine of its
/// device (one thread per device); a head's output does not depend on the other heads, so on
/// devices of one kind the parts equal the single-device run bit for bit.
public struct HeadSplit: Sendable, Hashable {
    /// One device's share.
    public struct Part: Sendable, Hashable {
        /// KV heads of the layer this part computes.
        public let kvHeads: Range<Int>
        /// Query heads of the layer this part computes (those reading `kvHeads`).
        public let queryHeads: Range<Int>
        /// The part as a problem: the layer's with `queryHeads.count` / `kvHeads.count` heads.
        public let problem: AttentionProblem
    }

    /// The whole layer.
    public let problem: AttentionProblem
    public let parts: [Part]

    /// Splits `problem`'s KV heads into `parts` contiguous ranges as evenly as possible (the first
    /// `Hkv % parts` ranges one head longer). Throws `AttentionError.invalidArgument` when `parts` is
    /// below 1 or above the KV head count (a KV head is not split).
    public init(problem: AttentionProblem, parts count: Int) throws {
        guard count >= 1, count <= problem.headsKV else {
            throw AttentionError.invalidArgument("cannot split \(problem.headsKV) KV heads into \(count) parts (1...\(problem.headsKV))")
        }
        self.problem = problem
        var parts: [Part] = []
        var first = 0
        for i in 0..<count {
            let size = problem.headsKV / count + (i < problem.headsKV % count ? 1 : 0)
            let kv = first..<(first + size)
            let group = problem.groupSize
            var part = problem
            part.headsKV = size
            part.headsQ = size * group
            parts.append(Part(kvHeads: kv, queryHeads: (kv.lowerBound * group)..<(kv.upperBound * group), problem: part))
            first += size
        }
        self.parts = parts
    }

    /// The patterns of part `index`'s query heads.
    public func plan(_ plan: LayerPlan, part index: Int) -> LayerPlan {
        LayerPlan(heads: Array(plan.heads[parts[index].queryHeads]))
    }

    /// Part `index`'s heads of a host tensor of the whole layer: q or the output (`[B, Hq, N, d]`)
    /// when `query`, else k or v (`[B, Hkv, N, d]`); rank 3 tensors (`[H, N, d]`) too.
    public func slice(_ tensor: Tensor, part index: Int, query: Bool) -> Tensor {
        let heads = query ? parts[index].queryHeads : parts[index].kvHeads
        let rank = tensor.shape.count
        let total = tensor.shape[rank - 3], perHead = tensor.shape[rank - 2] * tensor.shape[rank - 1] * tensor.dtype.byteCount
        let batch = rank == 4 ? tensor.shape[0] : 1
        var bytes: [UInt8] = []
        bytes.reserveCapacity(batch * heads.count * perHead)
        for b in 0..<batch {
            let base = (b * total + heads.lowerBound) * perHead
            bytes += tensor.bytes[base..<(base + heads.count * perHead)]
        }
        var shape = tensor.shape
        shape[rank - 3] = heads.count
        return Tensor(unchecked: shape, dtype: tensor.dtype, bytes: bytes)
    }

    /// The layer's output from its parts' outputs (each `[B, part's Hq, N, d]`), heads in order.
    public func concatenate(_ outputs: [Tensor]) throws -> Tensor {
        guard outputs.count == parts.count, let first = outputs.first else {
            throw AttentionError.shape("\(outputs.count) part outputs for a split into \(parts.count)")
        }
        let rank = first.shape.count, batch = rank == 4 ? first.shape[0] : 1
        var bytes: [UInt8] = []
        for b in 0..<batch {
            for (output, part) in zip(outputs, parts) {
                guard output.shape[rank - 3] == part.queryHeads.count, output.dtype == first.dtype else {
                    throw AttentionError.shape("a part output of shape \(output.shape) for \(part.queryHeads.count) query heads")
                }
                let perBatch = output.bytes.count / batch
                bytes += output.bytes[(b * perBatch)..<((b + 1) * perBatch)]
            }
        }
        var shape = first.shape
        shape[rank - 3] = problem.headsQ
        return try Tensor(shape: shape, dtype: first.dtype, bytes: bytes)
    }
}
