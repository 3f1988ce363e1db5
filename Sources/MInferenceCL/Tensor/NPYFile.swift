import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// NumPy `.npy` files: little-endian `<f2` and `<f4` in C order, `bfloat16` by name, plus a bf16
/// mode that reads and writes raw 16-bit words (`<u2`, `<i2`, `|V2`, `<V2`, `V2`: how ml_dtypes
/// saves bfloat16) as bfloat16. Anything else is refused with a
/// `TensorFileError` that says what was found.
public enum NPYFile {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads a tensor. With `bf16: true`, 16-bit integer or void words are taken as bfloat16.
    ///
    /// Throws ``TensorFileError``: `missing` or `unreadable` for the file, and what
    /// ``decode(_:path:bf16:)`` throws for its contents.
    public static func read(_ path: String, bf16: Bool = false) throws -> Tensor {
        guard FileManager.default.fileExists(atPath: path) else { throw TensorFileError.missing(path: path) }
        guard let data = FileManager.default.contents(atPath: path) else { throw TensorFileError.unreadable(path: path) }
        return try decode([UInt8](data), path: path, bf16: bf16)
    }

    /// Writes `tensor` (bf16 is stored as `<u2` words); the file appears whole or not at all.
    /// Throws ``TensorFileError/unwritable(path:reason:)``.
    public static func write(_ tensor: Tensor, to path: String) throws {
        let bytes = encode(tensor)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TensorFileError.unwritable(path: path, reason: TensorFileError.reason(error))
        }
    }

    /// The bytes of a `.npy` file (format version 1.0, C order) holding `tensor`: `<f2`, `<f4`, or
    /// bf16 as `<u2` words.
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        let descr = switch tensor.dtype {
        case .f16: "<f2"
        case .f32: "<f4"
        case .bf16: "<u2"
        }
        return encode(descr: descr, shape: tensor.shape, data: tensor.bytes)
    }

    /// Writes int32 values (index arrays) as `<i4`. Throws ``AttentionError/shape(_:)`` when the
    /// values do not fill `shape`, ``TensorFileError/unwritable(path:reason:)`` when the file
    /// cannot be written.
    public static func write(int32 values: [Int32], shape: [Int], to path: String) throws {
        guard try Tensor.elementCount(of: shape) == values.count else {
            throw AttentionError.shape("\(values.count) values do not fill shape \(shape)")
        }
        var data = [UInt8]()
        data.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        do {
            try Data(encode(descr: "<i4", shape: shape, data: data)).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TensorFileError.unwritable(path: path, reason: TensorFileError.reason(error))
        }
    }

    /// The bytes of a `.npy` file (format version 1.0, C order) of element type `descr` (numpy's
    /// descr string, e.g. `|u1`, `<i4`) holding the raw little-endian `data`.
    public static func encode(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
        let shape = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        let unpadded = magic.count + 2 + 2 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = magic + [1, 0]
        let length = UInt16(header.utf8.count)
        out += [UInt8(length & 0xff), UInt8(length >> 8)]
        out += Array(header.utf8)
        out += data
        return out
    }

    /// Parses the bytes of a `.npy` file; `path` names it in errors. With `bf16: true`, 16-bit
    /// integer or void words (`<u2`, `<i2`, `|V2`, `<V2`, `V2`) are taken as bfloat16.
    ///
    /// Throws ``TensorFileError``: `badHeader` (no magic, an unreadable header dict),
    /// `unsupportedDType` (with a hint, e.g. to pass `bf16`), `fortranOrder`, `truncated` or
    /// `shapeMismatch` when the data does not match the header.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>", bf16: Bool = false) throws -> Tensor {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw TensorFileError.badHeader(path: path, reason: "not a .npy file (missing the \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw TensorFileError.truncated(path: path, expected: 12, actual: bytes.count) }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw TensorFileError.badHeader(path: path, reason: "unsupported .npy format version \(major).\(bytes[7])")
        }
        guard headerStart + headerLength <= bytes.count else {
            throw TensorFileError.truncated(path: path, expected: headerStart + headerLength, actual: bytes.count)
        }
        let header = String(decoding: bytes[headerStart..<headerStart + headerLength], as: UTF8.self)
        let fields = try parseHeader(header, path: path)
        let dtype: DType
        // ml_dtypes' bfloat16 arrays are saved as void words ('<V2', or 'V2' by some NumPy versions)
        // or under the type's own name.
        let rawWords: Set<String> = ["<u2", "<i2", "|u2", "|i2", "|V2", "<V2", "V2"]
        let bfloat16Names: Set<String> = ["bfloat16", "<bfloat16", "|bfloat16"]
        switch fields.descr {
        case "<f2": dtype = .f16
        case "<f4": dtype = .f32
        case let d where bfloat16Names.contains(d): dtype = .bf16
        case let d where bf16 && rawWords.contains(d): dtype = .bf16
        case let d where d.hasPrefix(">"):
            throw TensorFileError.unsupportedDType(path: path, descr: d, hint: "big-endian data; save it little-endian ('<')")
        case let d where rawWords.contains(d):
            throw TensorFileError.unsupportedDType(
                path: path, descr: d,
                hint: "16-bit words (ml_dtypes saves bfloat16 so) are read as bfloat16 only in bf16 mode: pass --bf16 (library: bf16: true)")
        case let d:
            throw TensorFileError.unsupportedDType(path: path, descr: d, hint: "supported: <f2 (float16), <f4 (float32), bf16 as raw 16-bit words")
        }
        if fields.fortranOrder { throw TensorFileError.fortranOrder(path: path) }
        let count = fields.shape.reduce(1, *)
        let dataStart = headerStart + headerLength
        let expected = count * dtype.byteCount
        let actual = bytes.count - dataStart
        guard actual >= expected else { throw TensorFileError.truncated(path: path, expected: dataStart + expected, actual: bytes.count) }
        guard actual == expected else {
            throw TensorFileError.shapeMismatch(path: path, shape: fields.shape, dataBytes: actual, expectedBytes: expected)
        }
        return Tensor(unchecked: fields.shape, dtype: dtype, bytes: Array(bytes[dataStart...]))
    }

    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    /// Parses the Python dict literal of a .npy header.
    static func parseHeader(_ text: String, path: String) throws -> Header {
        func fail(_ reason: String) -> TensorFileError { .badHeader(path: path, reason: reason) }
        func value(of key: String) throws -> Substring {
            for quote in ["'", "\""] {
                if let r = text.firstRange(of: quote + key + quote) {
                    var rest = text[r.upperBound...].drop { $0 == " " }
                    guard rest.first == ":" else { throw fail("no ':' after '\(key)'") }
                    rest = rest.dropFirst().drop { $0 == " " }
                    return rest
                }
            }
            throw fail("header has no '\(key)' field: \(text.trimmingSpaces())")
        }
        let descrRest = try value(of: "descr")
        guard let q = descrRest.first, q == "'" || q == "\"", let end = descrRest.dropFirst().firstIndex(of: q) else {
            throw fail("'descr' is not a string (structured dtypes are not supported)")
        }
        let descr = String(descrRest.dropFirst()[..<end])
        let fortranRest = try value(of: "fortran_order")
        let fortran: Bool
        if fortranRest.hasPrefix("True") { fortran = true } else if fortranRest.hasPrefix("False") { fortran = false } else {
            throw fail("'fortran_order' is neither True nor False")
        }
        let shapeRest = try value(of: "shape")
        guard shapeRest.first == "(", let close = shapeRest.firstIndex(of: ")") else { throw fail("'shape' is not a tuple") }
        var shape: [Int] = []
        for part in shapeRest[shapeRest.index(after: shapeRest.startIndex)..<close].split(separator: ",") {
            let t = String(part.filter { $0 != "L" }).trimmingSpaces()
            if t.isEmpty { continue }
            guard let n = Int(t), n >= 0 else { throw fail("shape entry '\(t)' is not a non-negative integer") }
            shape.append(n)
        }
        // Every running product must fit, not just the total: a later 0 would hide an overflow
        // that `reduce(1, *)` (the element count) traps on.
        var count = 1
        for n in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow, product < Int.max / 8 else { throw fail("shape \(shape) is too large") }
            count = product
        }
        return Header(descr: descr, fortranOrder: fortran, shape: shape)
    }
}

/// A tensor file that cannot be read or written, and why.
public enum TensorFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No file at `path`.
    case missing(path: String)
    /// The file exists but its contents cannot be read.
    case unreadable(path: String)
    /// The file cannot be written; `reason` is the system's text (e.g. `Permission denied`).
    case unwritable(path: String, reason: String)
    /// Not a `.npy` file, or its header cannot be parsed; `reason` says what was wrong.
    case badHeader(path: String, reason: String)
    /// An element type other than `<f2`, `<f4` or bfloat16; `descr` is the header's, `hint` what to
    /// do instead.
    case unsupportedDType(path: String, descr: String, hint: String)
    /// The array is stored in Fortran (column-major) order.
    case fortranOrder(path: String)
    /// The file holds `actual` bytes; the header promises `expected`.
    case truncated(path: String, expected: Int, actual: Int)
    /// The data holds `dataBytes` bytes; `shape` needs `expectedBytes`.
    case shapeMismatch(path: String, shape: [Int], dataBytes: Int, expectedBytes: Int)

    /// One line naming the file and what is wrong with it.
    public var description: String {
        switch self {
        case .missing(let p): "\(p): no such file"
        case .unreadable(let p): "\(p): cannot be read"
        case .unwritable(let p, let r): "\(p): cannot be written (\(r))"
        case .badHeader(let p, let r): "\(p): bad .npy header: \(r)"
        case .unsupportedDType(let p, let d, let h): "\(p): unsupported dtype '\(d)': \(h)"
        case .fortranOrder(let p): "\(p): Fortran-order arrays are not supported; save it in C order (np.ascontiguousarray)"
        case .truncated(let p, let e, let a): "\(p): truncated: \(a) bytes, the header promises \(e)"
        case .shapeMismatch(let p, let s, let d, let e): "\(p): shape \(s) needs \(e) data bytes but the file holds \(d)"
        }
    }
}

extension TensorFileError {
    /// A short reason for a failed file operation: the POSIX error text (`No such file or
    /// directory`) instead of the Foundation error's dump.
    package static func reason(_ error: any Error) -> String {
        var posix = error as? POSIXError
        if posix == nil, let cocoa = error as? CocoaError {
            posix = cocoa.userInfo["NSUnderlyingError"] as? POSIXError
            if posix == nil { return "\(cocoa.code)" }
        }
        guard let posix else { return "\(error)" }
        return String(cString: strerror(posix.code.rawValue))
    }
}
