import FoundationEssentials

/// Builds a GGUF v3 file (or v2) in memory: metadata in insertion order, then tensor infos, then
/// the data, each tensor padded to `alignment`. Tests use it to make files to read back, and to
/// make small random models in the layout of a real one.
///
/// ```swift
/// var writer = GGUFWriter()
/// writer.add("general.architecture", .string("llama"))
/// try writer.addTensor("output_norm.weight", dimensions: [576], values: ones, type: .f32)
/// try writer.write(to: path)
/// ```
public struct GGUFWriter: Sendable {
    public var version: UInt32
    /// Alignment of the data section and of each tensor; when not 32, `encoded()` stores it as
    /// `general.alignment` unless that key was added by hand.
    public var alignment: Int
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [(info: GGUFTensorInfo, bytes: [UInt8])] = []
    private var dataSize = 0

    public init(version: UInt32 = 3, alignment: Int = GGUFFile.defaultAlignment) {
        self.version = version
        self.alignment = alignment
    }

    /// Adds a key (a later value for the same key is written too: duplicates make a bad file on
    /// purpose, for tests).
    public mutating func add(_ key: String, _ value: GGUFValue) {
        metadata.append((key, value))
    }

    /// Adds a tensor from its stored bytes.
    /// - Parameter dimensions: ggml order, row length first.
    /// - Throws: `GGUFError.invalidTensor` when `bytes.count` is not what `dimensions` and `type` take.
    public mutating func addTensor(_ name: String, dimensions: [Int], type: GGMLType, bytes: [UInt8]) throws {
        let info = GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: pad(dataSize))
        guard !dimensions.isEmpty, dimensions.allSatisfy({ $0 >= 0 }), dimensions[0] % type.blockSize == 0 else {
            throw GGUFError.invalidTensor(tensor: name, reason: "dimensions \(dimensions) do not fit \(type) blocks of \(type.blockSize)")
        }
        guard info.byteCount == bytes.count else {
            throw GGUFError.invalidTensor(tensor: name, reason: "\(type) \(dimensions) takes \(info.byteCount) bytes, got \(bytes.count)")
        }
        tensors.append((info, bytes))
        dataSize = info.offset + bytes.count
    }

    /// Adds a tensor from values in storage order, quantised to `type` (see `GGMLQuantize`).
    public mutating func addTensor(_ name: String, dimensions: [Int], values: [Float], type: GGMLType) throws {
        guard dimensions.reduce(1, *) == values.count else {
            throw GGUFError.invalidTensor(tensor: name, reason: "\(values.count) values for dimensions \(dimensions)")
        }
        try addTensor(name, dimensions: dimensions, type: type, bytes: GGMLQuantize.quantize(values, as: type, name: name))
    }

    /// The whole file.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        append(version, &out)
        var keys = metadata
        if alignment != GGUFFile.defaultAlignment, !keys.contains(where: { $0.key == "general.alignment" }) {
            keys.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0)
        }
        append(UInt64(tensors.count), &out)
        append(UInt64(keys.count), &out)
        for (key, value) in keys {
            appendString(key, &out)
            append(value.type.rawValue, &out)
            appendValue(value, &out)
        }
        for (info, _) in tensors {
            appendString(info.name, &out)
            append(UInt32(info.dimensions.count), &out)
            for d in info.dimensions { append(UInt64(d), &out) }
            append(info.type.rawValue, &out)
            append(UInt64(info.offset), &out)
        }
        out += [UInt8](repeating: 0, count: pad(out.count) - out.count)
        let dataStart = out.count
        for (info, bytes) in tensors {
            out += [UInt8](repeating: 0, count: dataStart + info.offset - out.count)
            out += bytes
        }
        return out
    }

    /// Writes `encoded()`; the file appears whole or not at all.
    /// - Throws: `GGUFError.unwritable`.
    public func write(to path: String) throws {
        do {
            try Data(encoded()).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw GGUFError.unwritable(path: path, reason: "\(error)")
        }
    }

    private func pad(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private func append<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    private func appendString(_ s: String, _ out: inout [UInt8]) {
        append(UInt64(s.utf8.count), &out)
        out += s.utf8
    }

    private func appendValue(_ value: GGUFValue, _ out: inout [UInt8]) {
        switch value {
        case .uint8(let v): append(v, &out)
        case .int8(let v): append(v, &out)
        case .uint16(let v): append(v, &out)
        case .int16(let v): append(v, &out)
        case .uint32(let v): append(v, &out)
        case .int32(let v): append(v, &out)
        case .uint64(let v): append(v, &out)
        case .int64(let v): append(v, &out)
        case .float32(let v): append(v.bitPattern, &out)
        case .float64(let v): append(v.bitPattern, &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): appendString(s, &out)
        case .array(let type, let values):
            append(type.rawValue, &out)
            append(UInt64(values.count), &out)
            for v in values { appendValue(v, &out) }
        }
    }
}
