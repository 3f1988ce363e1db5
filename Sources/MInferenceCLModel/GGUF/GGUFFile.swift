import FoundationEssentials

/// A GGUF model file (v2 or v3, little-endian): its metadata, tensor directory and tensor data.
///
/// Layout (ggml's docs/gguf.md): magic `GGUF`, u32 version, u64 tensor count, u64 key count;
/// the key/value pairs (u64-length string key, u32 type, value); the tensor infos (name, u32
/// dimension count, u64 dimensions in ggml order, u32 ggml type, u64 offset into the data
/// section); padding to `general.alignment` (default 32); the data section.
///
/// Opening checks the whole directory: every count against the bytes left, every type id,
/// duplicates, the alignment key, tensor dimensions, alignment and extent. Data is read lazily
/// from the file, which is memory-mapped, so opening a large model is cheap.
public struct GGUFFile: Sendable {
    /// The path the file was opened from, or `<memory>`; errors name it.
    public let path: String
    public let version: UInt32
    /// Keys in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor in it, in bytes (`general.alignment`,
    /// default 32).
    public let alignment: Int
    /// Byte offset of the data section from the start of the file.
    public let dataOffset: Int
    public var fileSize: Int { data.count }

    let data: Data
    private let tensorIndex: [String: Int]

    public static let defaultAlignment = 32
    static let magic: [UInt8] = Array("GGUF".utf8)
    /// ggml's `GGML_MAX_DIMS`.
    static let maxDimensions = 4
    /// Arrays of arrays deeper than this are refused rather than recursed into.
    static let maxNesting = 8

    /// Opens and checks the file at `path`, memory-mapping it.
    /// - Throws: `GGUFError` (`missing`, `unreadable`, or any format error of `init(data:path:)`).
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw GGUFError.missing(path: path) }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw GGUFError.unreadable(path: path, reason: "\(error)")
        }
        try self.init(data: data, path: path)
    }

    /// Checks and reads the directory of a GGUF image in memory.
    /// - Throws: `GGUFError`: `truncated`, `badMagic`, `unsupportedVersion`, `unknownValueType`,
    ///   `unknownTensorType`, `duplicateKey`, `duplicateTensor`, `malformed`, `misalignedTensor`,
    ///   `tensorBeyondEnd`.
    public init(data: Data, path: String = "<memory>") throws {
        let directory = try data.withUnsafeBytes { raw in
            var reader = GGUFDirectoryReader(cursor: GGUFCursor(raw, path: path))
            return try reader.read()
        }
        self.path = path
        self.data = data
        version = directory.version
        metadataKeys = directory.keys
        metadata = directory.metadata
        tensors = directory.tensors
        alignment = directory.alignment
        dataOffset = directory.dataOffset
        tensorIndex = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    // MARK: Tensors

    /// - Throws: `GGUFError.missingTensor`.
    public func tensor(named name: String) throws -> GGUFTensorInfo {
        guard let i = tensorIndex[name] else { throw GGUFError.missingTensor(path: path, tensor: name) }
        return tensors[i]
    }

    public func hasTensor(named name: String) -> Bool { tensorIndex[name] != nil }

    /// Whether `tensor` is this file's tensor of that name, unchanged.
    func isOwn(_ tensor: GGUFTensorInfo) -> Bool { tensorIndex[tensor.name].map { tensors[$0] == tensor } ?? false }

    /// Calls `body` with the stored bytes of `tensor` (`tensor.byteCount` of them, checked to lie in
    /// the file when it was opened). The pointer is valid only inside `body`.
    /// - Precondition: `tensor` is one of `tensors`.
    public func withBytes<R>(of tensor: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(isOwn(tensor), "tensor '\(tensor.name)' is not one of \(path)'s")
        return try data.withUnsafeBytes { raw in
            let start = dataOffset + tensor.offset
            return try body(UnsafeRawBufferPointer(rebasing: raw[start..<start + tensor.byteCount]))
        }
    }
}
