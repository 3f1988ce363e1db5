import FoundationEssentials

/// A GGUF file that cannot be read, written or used, and why. Every message names the file (its
/// path, or `<memory>`), and where it helps the byte offset, key or tensor at fault.
public enum GGUFError: Error, CustomStringConvertible, LocalizedError, Sendable, Equatable {
    case missing(path: String)
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    /// The file ends inside `what`, which starts at byte `offset` and needs `needed` bytes.
    case truncated(path: String, what: String, offset: Int, needed: Int, fileSize: Int)
    case badMagic(path: String, found: [UInt8])
    case unsupportedVersion(path: String, version: UInt32)
    case unknownValueType(path: String, key: String, rawType: UInt32)
    case unknownTensorType(path: String, tensor: String, rawType: UInt32)
    case duplicateKey(path: String, key: String)
    case duplicateTensor(path: String, tensor: String)
    /// A structural rule of the format is broken (alignment, dimensions, nesting).
    case malformed(path: String, reason: String)
    case misalignedTensor(path: String, tensor: String, offset: Int, alignment: Int)
    /// The tensor's data would end at byte `end`, past the file's last byte.
    case tensorBeyondEnd(path: String, tensor: String, end: Int, fileSize: Int)
    case missingKey(path: String, key: String)
    case wrongType(path: String, key: String, expected: String, found: String)
    case missingTensor(path: String, tensor: String)
    case unsupportedDequantization(path: String, tensor: String, type: GGMLType)
    /// Writer input that cannot make a valid file (shape and data disagree, bad names).
    case invalidTensor(tensor: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let p): "\(p): no such file"
        case .unreadable(let p, let r): "\(p): cannot be read (\(r))"
        case .unwritable(let p, let r): "\(p): cannot be written (\(r))"
        case .truncated(let p, let w, let o, let n, let s):
            "\(p): truncated GGUF: \(w) at byte \(o) needs \(n) bytes, but the file has \(s)"
        case .badMagic(let p, let f):
            "\(p): not a GGUF file: it starts with \(f.map { String($0, radix: 16) }) instead of \"GGUF\""
        case .unsupportedVersion(let p, let v):
            v > 0xFFFF
                ? "\(p): unsupported GGUF version \(v) (a big-endian file? only little-endian v2 and v3 are read)"
                : "\(p): unsupported GGUF version \(v) (v2 and v3 are read)"
        case .unknownValueType(let p, let k, let t): "\(p): key '\(k)' has unknown value type \(t)"
        case .unknownTensorType(let p, let n, let t): "\(p): tensor '\(n)' has unknown ggml type \(t)"
        case .duplicateKey(let p, let k): "\(p): key '\(k)' appears twice"
        case .duplicateTensor(let p, let n): "\(p): tensor '\(n)' appears twice"
        case .malformed(let p, let r): "\(p): malformed GGUF: \(r)"
        case .misalignedTensor(let p, let n, let o, let a):
            "\(p): tensor '\(n)' starts at data offset \(o), not a multiple of the alignment \(a)"
        case .tensorBeyondEnd(let p, let n, let e, let s):
            "\(p): tensor '\(n)' ends at byte \(e), past the end of the file (\(s) bytes)"
        case .missingKey(let p, let k): "\(p): no metadata key '\(k)'"
        case .wrongType(let p, let k, let e, let f): "\(p): key '\(k)' is \(f), expected \(e)"
        case .missingTensor(let p, let n): "\(p): no tensor '\(n)'"
        case .unsupportedDequantization(let p, let n, let t):
            "\(p): tensor '\(n)' is \(t), which cannot be dequantised yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
        case .invalidTensor(let n, let r): "tensor '\(n)': \(r)"
        }
    }

    public var errorDescription: String? { description }
}
