import ArgumentParser
import MInferenceCL
import MInferenceCLModel

/// `--products` and `--attention-dtype`: where a model's products run and the dtype attention
/// reads (generate, eval, capture --forward device).
struct ModelPrecisionOptions: ParsableArguments {
    @Option(name: .long, help: "Where the products run: auto (tensor cores where the device has them, else CLBlast), clblast (fp32) or tensor-cores (fp16 inputs, fp32 accumulation; NVIDIA).")
    var products = "auto"
    @Option(name: .long, help: "Element type of q and the KV cache that attention reads: f32, f16 (the tensor-core paths' input), or auto (f16 with tensor-core products, else f32).")
    var attentionDtype = "auto"

    /// The product path and attention dtype on `context`'s device.
    func resolve(context: ComputeContext) throws -> (products: ProductPath, attention: DType) {
        let path = try Self.productPath(products, context: context)
        return (path, try Self.attentionType(attentionDtype, products: path))
    }

    /// The `--attention-dtype` value as a dtype (f32 or f16; auto: the products' input dtype).
    static func attentionType(_ name: String, products: ProductPath) throws -> DType {
        if name == "auto" { return products.inputDType }
        guard let dtype = DType(name: name), dtype == .f32 || dtype == .f16 else {
            throw ValidationError("unknown --attention-dtype '\(name)'; use auto, f32 or f16")
        }
        return dtype
    }

    /// The `--products` value on `context`'s device (auto: `ProductPath.preferred(for:)`).
    static func productPath(_ name: String, context: ComputeContext) throws -> ProductPath {
        if name == "auto" { return .preferred(for: context) }
        guard let path = ProductPath(rawValue: name) else {
            throw ValidationError("unknown --products '\(name)'; use auto, clblast or tensor-cores")
        }
        guard path.isAvailable(on: context) else {
            throw ValidationError("--products \(name): \(context.device.info.name) has no tensor-core path (NVIDIA, compute capability >= 8.0)")
        }
        return path
    }
}
