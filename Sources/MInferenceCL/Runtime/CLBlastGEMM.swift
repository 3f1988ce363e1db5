import CCLBlast
import COpenCL

/// Batched single-precision GEMM through CLBlast (the design's GEMM library): the portable path
/// of the sparse estimates' products (last queries x K^T, pooled Q x pooled K^T).
///
/// C[b] = A[b] (m x k, row-major) * B[b]^T (B[b] is n x k, row-major), for each batch entry b at
/// the given element offsets.
enum CLBlastGEMM {
    static func multiplyTransposed(context: ComputeContext, m: Int, n: Int, k: Int,
                                   a: DeviceBuffer, aOffsets: [Int], b: DeviceBuffer, bOffsets: [Int],
                                   c: DeviceBuffer, cOffsets: [Int]) throws -> CommandEvent {
        precondition(aOffsets.count == bOffsets.count && bOffsets.count == cOffsets.count)
        let batch = aOffsets.count
        let alphas = [Float](repeating: 1, count: batch)
        let betas = [Float](repeating: 0, count: batch)
        var queue: cl_command_queue? = context.queue
        try warmUp(context: context)
        // Markers before and after: CLBlast may run helper kernels besides the GEMM, and the phase
        // time should include them.
        var before: cl_event?
        try check(clEnqueueMarkerWithWaitList(context.queue, 0, nil, &before), "clEnqueueMarkerWithWaitList", device: context.device.info.name)
        let beforeEvent = CommandEvent(event: before!, label: "clblast start")
        var event: cl_event?
        let blas = CLBlastSgemmBatched(
            CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k,
            alphas, a.mem, aOffsets, k, b.mem, bOffsets, k, betas, c.mem, cOffsets, n, batch, &queue, &event)
        guard blas == CLBlastSuccess else {
            throw CLBlastError(status: blas.rawValue, call: "CLBlastSgemmBatched(m \(m), n \(n), k \(k), batch \(batch))",
                               device: context.device.info.name)
        }
        if let event { clReleaseEvent(event) }
        var after: cl_event?
        try check(clEnqueueMarkerWithWaitList(context.queue, 0, nil, &after), "clEnqueueMarkerWithWaitList", device: context.device.info.name)
        return CommandEvent(spanning: beforeEvent, CommandEvent(event: after!, label: "clblast end"), label: "CLBlastSgemmBatched")
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
        let status = CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, 1, 1, 1,
                                         [1], scratch.mem, [0], 1, scratch.mem, [4], 1, [0], scratch.mem, [8], 1, 1, &queue, &event)
        guard status == CLBlastSuccess else {
            throw CLBlastError(status: status.rawValue, call: "CLBlastSgemmBatched(warm-up)", device: context.device.info.name)
        }
        if let event { clReleaseEvent(event) }
        try context.finish()
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
