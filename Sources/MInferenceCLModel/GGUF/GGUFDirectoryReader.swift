/// Reads and checks everything of a GGUF file before its data section (see `GGUFFile`).
struct GGUFDirectoryReader {
    var cursor: GGUFCursor
    var path: String { cursor.path }

    struct Directory {
        var version: UInt32
        var keys: [String]
        var metadata: [String: GGUFValue]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    mutating func read() throws -> Directory {
        let magic = Array(try cursor.take(4, "the magic \"GGUF\""))
        guard magic == GGUFFile.magic else { throw GGUFError.badMagic(path: path, found: magic) }
        let version = try cursor.read(UInt32.self, "the version")
        // v1 stored counts and lengths as u32; nothing current writes it.
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(path: path, version: version) }
        // The smallest tensor info is an empty name (8), one dimension (4 + 8), type and offset (12).
        let tensorCount = try cursor.readCount(itemSize: 32, "the tensor count")
        let keyCount = try cursor.readCount(itemSize: 12, "the metadata key count")

        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        for i in 0..<keyCount {
            let key = try cursor.readString("the name of metadata key \(i)")
            let rawType = try cursor.read(UInt32.self, "the type of key '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.unknownValueType(path: path, key: key, rawType: rawType)
            }
            let value = try readValue(type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw GGUFError.duplicateKey(path: path, key: key) }
            keys.append(key)
        }
        let alignment = try alignment(metadata["general.alignment"])

        var tensors: [GGUFTensorInfo] = []
        var names: Set<String> = []
        for i in 0..<tensorCount {
            let tensor = try readTensorInfo(index: i, alignment: alignment)
            guard names.insert(tensor.name).inserted else { throw GGUFError.duplicateTensor(path: path, tensor: tensor.name) }
            tensors.append(tensor)
        }
        cursor.align(to: alignment)
        let dataOffset = cursor.offset
        for t in tensors {
            let (start, overflow1) = dataOffset.addingReportingOverflow(t.offset)
            let (end, overflow2) = start.addingReportingOverflow(t.byteCount)
            let overflow = overflow1 || overflow2
            guard !overflow, end <= cursor.bytes.count else {
                throw GGUFError.tensorBeyondEnd(path: path, tensor: t.name, end: overflow ? Int.max : end,
                                                fileSize: cursor.bytes.count)
            }
        }
        return Directory(version: version, keys: keys, metadata: metadata, tensors: tensors, alignment: alignment,
                         dataOffset: dataOffset)
    }

    /// `general.alignment` must be a non-zero power of two stored as uint32 (what gguf.cpp accepts).
    func alignment(_ value: GGUFValue?) throws -> Int {
        guard let value else { return GGUFFile.defaultAlignment }
        guard case .uint32(let a) = value else {
            throw GGUFError.wrongType(path: path, key: "general.alignment", expected: "uint32", found: value.type.description)
        }
        guard a > 0, a & (a - 1) == 0 else {
            throw GGUFError.malformed(path: path, reason: "general.alignment \(a) is not a power of two")
        }
        return Int(a)
    }

    mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, what))
        case .int8: return .int8(try cursor.read(Int8.self, what))
        case .uint16: return .uint16(try cursor.read(UInt16.self, what))
        case .int16: return .int16(try cursor.read(Int16.self, what))
        case .uint32: return .uint32(try cursor.read(UInt32.self, what))
        case .int32: return .int32(try cursor.read(Int32.self, what))
        case .uint64: return .uint64(try cursor.read(UInt64.self, what))
        case .int64: return .int64(try cursor.read(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try cursor.read(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try cursor.read(UInt64.self, what)))
        case .bool:
            let byte = try cursor.read(UInt8.self, what)
            guard byte <= 1 else { throw GGUFError.malformed(path: path, reason: "key '\(key)': bool byte \(byte) is neither 0 nor 1") }
            return .bool(byte == 1)
        case .string: return .string(try cursor.readString(what))
        case .array:
            guard depth < GGUFFile.maxNesting else {
                throw GGUFError.malformed(path: path, reason: "key '\(key)': arrays nested deeper than \(GGUFFile.maxNesting)")
            }
            let rawType = try cursor.read(UInt32.self, "the element type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.unknownValueType(path: path, key: key, rawType: rawType)
            }
            let count = try cursor.readCount(itemSize: elementType.minimumSize, "the elements of '\(key)'")
            var values: [GGUFValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try readValue(elementType, key: key, depth: depth + 1)) }
            return .array(elementType, values)
        }
    }

    mutating func readTensorInfo(index: Int, alignment: Int) throws -> GGUFTensorInfo {
        let name = try cursor.readString("the name of tensor \(index)")
        let count = try cursor.read(UInt32.self, "the dimension count of '\(name)'")
        guard count >= 1, count <= GGUFFile.maxDimensions else {
            throw GGUFError.malformed(
                path: path, reason: "tensor '\(name)' has \(count) dimensions (1 to \(GGUFFile.maxDimensions) allowed)")
        }
        var dimensions: [Int] = []
        var elements = 1
        for d in 0..<Int(count) {
            let raw = try cursor.read(UInt64.self, "dimension \(d) of '\(name)'")
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(exactly: raw) ?? Int.max)
            guard let n = Int(exactly: raw), !overflow else {
                throw GGUFError.malformed(path: path, reason: "tensor '\(name)' has too many elements (dimension \(d) is \(raw))")
            }
            dimensions.append(n)
            elements = product
        }
        let rawType = try cursor.read(UInt32.self, "the type of '\(name)'")
        guard let type = GGMLType(rawValue: rawType) else {
            throw GGUFError.unknownTensorType(path: path, tensor: name, rawType: rawType)
        }
        guard dimensions[0] % type.blockSize == 0 else {
            throw GGUFError.malformed(
                path: path,
                reason: "tensor '\(name)': row length \(dimensions[0]) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        let rawOffset = try cursor.read(UInt64.self, "the data offset of '\(name)'")
        guard let offset = Int(exactly: rawOffset) else {
            throw GGUFError.tensorBeyondEnd(path: path, tensor: name, end: Int.max, fileSize: cursor.bytes.count)
        }
        guard offset % alignment == 0 else {
            throw GGUFError.misalignedTensor(path: path, tensor: name, offset: offset, alignment: alignment)
        }
        // The byte count must not overflow either: elements / blockSize * typeSize.
        guard (elements / type.blockSize).multipliedReportingOverflow(by: type.typeSize).overflow == false else {
            throw GGUFError.malformed(path: path, reason: "tensor '\(name)' is too large")
        }
        return GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: offset)
    }
}
