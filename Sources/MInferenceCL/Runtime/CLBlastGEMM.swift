import CCLBlast
import COpenCL

/// Batched single-precision GEMM through CLBlast (the design's GEMM library): the portable path
/// of the sparse estimates' products (last queries x K^T, pooled Q x pooled K^T).
///
/// C[b] = A[b] (m x k, row-major) * B[b]^T (B[b] is n x k, row-major) + beta C[b], for each batch
/// entry b at the given element offsets (beta 0 by default; 1 accumulates into C).
/// The entries go to CLBlast in runs whose offsets step by constant
/// strides: a run sharing one B (the query heads of one KV head) with packed A and C is one plain
/// GEMM of more rows, any other run one strided-batched GEMM. (CLBlast's offset-array batched GEMM
/// uploads its arrays with a blocking write, which would make the host wait for the queue, and
/// `AttentionEngine.enqueue` promises it never does.)
package enum CLBlastGEMM {
    package static func multiplyTransposed(context: ComputeContext, m: Int, n: Int, k: Int,
                                   a: DeviceBuffer, aOffsets: [Int], b: DeviceBuffer, bOffsets: [Int],
                                   c: DeviceBuffer, cOffsets: [Int], beta: Float = 0) throws -> CommandEvent {
        guard aOffsets.count == bOffsets.count, bOffsets.count == cOffsets.count else {
            throw AttentionError.invalidArgument("CLBlast GEMM: \(aOffsets.count), \(bOffsets.count) and \(cOffsets.count) offsets")
        }
        try warmUp(context: context)
        // Markers before and after: CLBlast may run helper kernels besides the GEMM, and the phase
        // time should include them.
        let beforeEvent = try context.marker(waitingFor: [], label: "clblast start")
        for run in stridedRuns(aOffsets, bOffsets, cOffsets) {
            var queue: cl_command_queue? = context.queue
            var event: cl_event?
            let status: CLBlastStatusCode
            let call: String
            if run.count == 1 || (run.strides.b == 0 && run.strides.a == m * k && run.strides.c == m * n) {
                // One B for the run (a grouped-query run), A and C packed: one GEMM of count * m rows.
                call = "CLBlastSgemm(m \(run.count * m), n \(n), k \(k))"
                status = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, run.count * m, n, k,
                                      1, a.mem, aOffsets[run.first], k, b.mem, bOffsets[run.first], k,
                                      beta, c.mem, cOffsets[run.first], n, &queue, &event)
            } else {
                call = "CLBlastSgemmStridedBatched(m \(m), n \(n), k \(k), batch \(run.count))"
                status = CLBlastSgemmStridedBatched(
                    CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k,
                    1, a.mem, aOffsets[run.first], k, run.strides.a, b.mem, bOffsets[run.first], k, run.strides.b,
                    beta, c.mem, cOffsets[run.first], n, run.strides.c, run.count, &queue, &event)
            }
            guard status == CLBlastSuccess else {
                throw CLBlastError(status: status.rawValue, call: call, device: context.device.info.name)
            }
            if let event { clReleaseEvent(event) }
        }
        let afterEvent = try context.marker(waitingFor: [], label: "clblast end")
        return CommandEvent(spanning: beforeEvent, afterEvent, label: "CLBlastSgemmStridedBatched")
    }

    /// Maximal runs of consecutive entries whose three offsets each step by a constant,
    /// non-negative stride.
    static func stridedRuns(_ a: [Int], _ b: [Int], _ c: [Int]) -> [(first: Int, count: Int, strides: (a: Int, b: Int, c: Int))] {
        var runs: [(first: Int, count: Int, strides: (a: Int, b: Int, c: Int))] = []
        var first = 0
        while first < a.count {
            var count = 1
            var strides = (a: 0, b: 0, c: 0)
            if first + 1 < a.count {
                let step = (a: a[first + 1] - a[first], b: b[first + 1] - b[first], c: c[first + 1] - c[first])
                if step.a >= 0 && step.b >= 0 && step.c >= 0 {
                    strides = step
                    count = 2
                    while first + count < a.count, a[first + count] - a[first + count - 1] == step.a,
                          b[first + count] - b[first + count - 1] == step.b, c[first + count] - c[first + count - 1] == step.c {
                        count += 1
                    }
                }
            }
            runs.append((first, count, strides))
            first += count
        }
        return runs
    }
}

extension CLBlastGEMM {
    /// CLBlast compiles its GEMM program on a context's first call, on the host, between our
    /// markers; a 1x1x1 product first keeps that compilation out of the timed span.
    static func warmUp(context: ComputeContext) throws {
        guard context.claimCLBlastWarmUp() else { return }
        let scratch = try DeviceBuffer(context: context, byteCount: 64, label: "clblast warm-up")
        var queue: cl_command_queue? = context.queue
        var event: cl_event?
        // Both routines' programs: a plain GEMM and a strided batch of two.
        var status = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, 1, 1, 1,
                                  1, scratch.mem, 0, 1, scratch.mem, 4, 1, 0, scratch.mem, 8, 1, &queue, &event)
        if status == CLBlastSuccess {
            if let event { clReleaseEvent(event) }
            event = nil
            status = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, 1, 1, 1,
                                                1, scratch.mem, 0, 1, 1, scratch.mem, 4, 1, 1, 0, scratch.mem, 8, 1, 1, 2, &queue, &event)
        }
        guard status == CLBlastSuccess else {
            throw CLBlastError(status: status.rawValue, call: "CLBlast GEMM warm-up", device: context.device.info.name)
        }
        // No wait: the in-order queue runs the warm-up before the timed span's opening marker.
        if let event { clReleaseEvent(event) }
    }
}

/// A CLBlast call that failed, with CLBlast's status by name.
public struct CLBlastError: Error, CustomStringConvertible, Sendable {
    /// CLBlast's status code (an OpenCL status between -1 and -999 is named as one).
    public let status: Int32
    /// The call with its sizes, e.g. `CLBlastSgemmBatched(m 64, n 8192, k 128, batch 32)`.
    public let call: String
    /// The device name.
    public let device: String

    /// One line: the call, the status by name and number, and the device.
    public var description: String {
        let name = status > -1000 && status < 0 ? OpenCLError.name(of: status) : Self.names[status] ?? "CLBlast status"
        return "\(call) failed with \(name) (\(status)) on \(device)"
    }

    static let names: [Int32: String] = [
        -1024: "CLBlastNotImplemented", -1017: "CLBlastInvalidDimension", -1016: "CLBlastInvalidLeadDimA",
        -1015: "CLBlastInvalidLeadDimB", -1014: "CLBlastInvalidLeadDimC", -1011: "CLBlastInsufficientMemoryA",
        -1010: "CLBlastInsufficientMemoryB", -1009: "CLBlastInsufficientMemoryC", -2050: "CLBlastInsufficientMemoryTemp",
        -2049: "CLBlastInvalidBatchCount", -2046: "CLBlastInvalidLocalMemUsage", -2045: "CLBlastNoHalfPrecision",
        -2041: "CLBlastDatabaseError", -2040: "CLBlastUnknownError", -2039: "CLBlastUnexpectedError",
    ]
}
