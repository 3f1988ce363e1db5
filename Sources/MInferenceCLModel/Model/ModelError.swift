/// A GGUF file that holds no model the reference forward pass can run, and why. Every message
/// names the file. A missing or mistyped metadata key is `GGUFError.missingKey` / `wrongType`,
/// a missing tensor `GGUFError.missingTensor`, which name the key or tensor.
public enum ModelError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `general.architecture` is not one this reference runs (only `llama`).
    case unsupportedArchitecture(path: String, architecture: String)
    /// The hyperparameters contradict each other or ask for something not implemented
    /// (partial RoPE, RoPE scaling, a width not divisible by the head count).
    case unsupportedConfig(path: String, reason: String)
    /// A tensor's dimensions (ggml order) are not what the hyperparameters imply.
    case tensorShape(path: String, tensor: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let p, let a):
            "\(p): architecture '\(a)' is not supported by the reference forward pass (only 'llama')"
        case .unsupportedConfig(let p, let r): "\(p): unsupported model configuration: \(r)"
        case .tensorShape(let p, let t, let e, let f):
            "\(p): tensor '\(t)' has dimensions \(f) (ggml order), expected \(e)"
        }
    }
}
