import Foundation
import MInferenceCLModel

/// The real SmolLM2-135M-Instruct GGUF, when `scripts/fetch-model.sh` has fetched it (or
/// MINFERENCECL_MODEL_GGUF names one). Tests that need it use `.enabled(if: RealModel.isPresent)`
/// and the first check prints whether they run, so a run without the model says so.
enum RealModel {
    static let path = DefaultModel.path(environment: ProcessInfo.processInfo.environment)

    static let isPresent: Bool = {
        let present = FileManager.default.fileExists(atPath: path)
        print(present
              ? "Real-model tests run on \(path)"
              : "Real-model tests NOT RUN: no GGUF at \(path) (run scripts/fetch-model.sh or set MINFERENCECL_MODEL_GGUF)")
        return present
    }()

    /// Opened once per process.
    static let file: Result<GGUFFile, any Error> = Result { try GGUFFile(path: path) }
    /// Its weights dequantised once per process (540 MB), for the suites that share them.
    static let reference: Result<ReferenceModel, any Error> = Result { try ReferenceModel(gguf: file.get()) }
    /// Its tokenizer, read once per process.
    static let tokenizer: Result<Tokenizer, any Error> = Result { try Tokenizer(gguf: file.get()) }
}

extension GGUFWriter {
    /// The file read back from memory.
    func readBack() throws -> GGUFFile { try GGUFFile(data: Data(encoded())) }
}

/// Offset of the first occurrence of `pattern` in `bytes`.
func firstOffset(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
    guard pattern.count <= bytes.count else { return nil }
    return (0...(bytes.count - pattern.count)).first { bytes[$0..<$0 + pattern.count].elementsEqual(pattern) }
}

/// Overwrites the little-endian `value` at `offset`.
func patch<T: FixedWidthInteger>(_ bytes: inout [UInt8], at offset: Int, _ value: T) {
    withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + $0.count, with: $0) }
}
