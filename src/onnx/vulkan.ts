/**
 * The Vulkan devices of this machine, read through the Vulkan loader (libvulkan.so.1) with Deno's
 * FFI: the same loader and drivers that the WebGPU provider's Dawn uses, so the names are the
 * adapters it can get. ONNX Runtime reports no adapter of its own, so this is how a GPU run can
 * name its adapter and how `device: auto` tells a real GPU from a software one (Mesa's
 * llvmpipe/lavapipe, VK_PHYSICAL_DEVICE_TYPE_CPU). Without the loader, or without FFI
 * permission, the list is empty and says why.
 */

/** VkPhysicalDeviceType, by name. */
export type VulkanDeviceType = "other" | "integrated-gpu" | "discrete-gpu" | "virtual-gpu" | "cpu";

export interface VulkanDevice {
  /** VkPhysicalDeviceProperties.deviceName, e.g. "llvmpipe (LLVM 19.1.7, 256 bits)". */
  name: string;
  type: VulkanDeviceType;
  /** A driver that renders on the CPU (type cpu, or a llvmpipe/lavapipe/SwiftShader name). */
  software: boolean;
  vendorId: number;
  deviceId: number;
  /** "major.minor.patch" of the device's Vulkan API. */
  apiVersion: string;
}

export interface VulkanDevices {
  devices: VulkanDevice[];
  /** Why the list is empty (no loader, no permission, no driver), when it is. */
  why?: string;
}

const TYPES: VulkanDeviceType[] = ["other", "integrated-gpu", "discrete-gpu", "virtual-gpu", "cpu"];

/** Adapter names of drivers that compute on the CPU. */
const SOFTWARE_NAME = /llvmpipe|lavapipe|swiftshader|softpipe/i;

/** Whether an adapter (by type and name) is a software rasterizer. */
export function isSoftwareAdapter(type: VulkanDeviceType, name: string): boolean {
  return type === "cpu" || SOFTWARE_NAME.test(name);
}

// sizeof(VkPhysicalDeviceProperties) is 824 on 64-bit Linux; a larger buffer costs nothing.
const PROPS_BYTES = 4096;
const NAME_OFFSET = 20, NAME_BYTES = 256;

let cached: VulkanDevices | undefined;

/** This machine's Vulkan devices (enumerated once per process). */
export function vulkanDevices(): VulkanDevices {
  cached ??= enumerate();
  return cached;
}

function enumerate(): VulkanDevices {
  if (Deno.build.os !== "linux") return { devices: [], why: "Vulkan is looked up on Linux only" };
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { devices: [], why: "no FFI permission to ask the Vulkan loader (run with -A)" };
  }
  let lib;
  try {
    lib = Deno.dlopen(
      "libvulkan.so.1",
      {
        vkCreateInstance: { parameters: ["buffer", "pointer", "buffer"], result: "i32" },
        vkDestroyInstance: { parameters: ["pointer", "pointer"], result: "void" },
        vkEnumeratePhysicalDevices: {
          parameters: ["pointer", "buffer", "buffer"],
          result: "i32",
        },
        vkGetPhysicalDeviceProperties: { parameters: ["pointer", "buffer"], result: "void" },
      } as const,
    );
  } catch {
    return {
      devices: [],
      why: "no Vulkan loader (libvulkan.so.1; Debian: apt-get install libvulkan1)",
    };
  }
  try {
    // VkInstanceCreateInfo: sType 1 (INSTANCE_CREATE_INFO), everything else zero.
    const info = new Uint8Array(64);
    new DataView(info.buffer).setUint32(0, 1, true);
    const inst = new BigUint64Array(1);
    const rc = lib.symbols.vkCreateInstance(info, null, inst);
    if (rc !== 0 || inst[0] === 0n) {
      return { devices: [], why: `vkCreateInstance failed (VkResult ${rc}): no Vulkan driver` };
    }
    const instance = Deno.UnsafePointer.create(inst[0]);
    try {
      const count = new Uint32Array(1);
      lib.symbols.vkEnumeratePhysicalDevices(instance, count, null);
      const handles = new BigUint64Array(count[0]);
      if (count[0] > 0) lib.symbols.vkEnumeratePhysicalDevices(instance, count, handles);
      const devices: VulkanDevice[] = [];
      for (const h of handles.subarray(0, count[0])) {
        const props = new Uint8Array(PROPS_BYTES);
        lib.symbols.vkGetPhysicalDeviceProperties(Deno.UnsafePointer.create(h), props);
        const dv = new DataView(props.buffer);
        const raw = props.subarray(NAME_OFFSET, NAME_OFFSET + NAME_BYTES);
        const name = new TextDecoder().decode(raw.subarray(0, Math.max(0, raw.indexOf(0))));
        const type = TYPES[dv.getUint32(16, true)] ?? "other";
        const api = dv.getUint32(0, true);
        devices.push({
          name,
          type,
          software: isSoftwareAdapter(type, name),
          vendorId: dv.getUint32(8, true),
          deviceId: dv.getUint32(12, true),
          apiVersion: `${(api >>> 22) & 0x7f}.${(api >>> 12) & 0x3ff}.${api & 0xfff}`,
        });
      }
      return devices.length ? { devices } : { devices, why: "the Vulkan loader found no device" };
    } finally {
      lib.symbols.vkDestroyInstance(instance, null);
    }
  } finally {
    lib.close();
  }
}

/**
 * The adapter WebGPU's default (high-performance) request gets: a discrete GPU before an
 * integrated or virtual one, a software device last; undefined when there is none.
 */
export function preferredAdapter(
  devices: readonly VulkanDevice[] = vulkanDevices().devices,
): VulkanDevice | undefined {
  const rank = (d: VulkanDevice) =>
    d.software ? 4 : ["discrete-gpu", "integrated-gpu", "virtual-gpu", "other"].indexOf(d.type);
  return [...devices].sort((a, b) => rank(a) - rank(b))[0];
}
