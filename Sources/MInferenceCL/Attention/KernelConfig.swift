/// How a kernel computes a problem on a device: tile sizes and the vendor path. Chosen from the
/// tuning table by `KernelConfig.choose`; the kernel source makes no performance choices.
public struct KernelConfig: Sendable, Hashable, CustomStringConvertible {
    public enum Path: String, Sendable, Hashable, Codable {
        /// OpenCL C 1.2, correct on every device.
        case portable
    }

    /// Query rows per work-group (one work-item per row on the portable path).
    public var queryTile: Int
    /// Keys staged in local memory per step.
    public var keyTile: Int
    public var path: Path

    public var description: String { "\(path) query_tile=\(queryTile) key_tile=\(keyTile)" }

    /// Local memory the portable attention kernels use (K and V tiles in fp32 + key positions).
    func localMemoryBytes(headDim: Int) -> Int { 2 * keyTile * headDim * 4 + keyTile * 4 }

    /// The `-D` values this configuration adds to a program.
    func defines(headDim: Int) -> [String: String] {
        ["HEAD_DIM": "\(headDim)", "QUERY_TILE": "\(queryTile)", "KEY_TILE": "\(keyTile)"]
    }
}
